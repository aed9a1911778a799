"""The knobs of a local run (`make run ARGS="..."`) and their command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoOptions", "parse_args"]


@dataclass(frozen=True)
class DemoOptions:
    """The run's knobs; the mapping's defaults are the template's (BatchSize 100, MaximumRetryAttempts 5, 60 s)."""

    changes: int = 300
    keys: int = 25
    batch_size: int = 100
    fault_rate: float = 0.0
    seed: int = 1
    max_retries: int = 5
    timeout_seconds: int = 60
    redrive: bool = False
    show: int = 10
    log_file: Path | None = None


def parse_args(argv: Sequence[str] | None = None) -> DemoOptions:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(
        prog="python -m local_pipeline",
        description="Run the whole pipeline locally (local Momento server, moto DynamoDB table and stream, the real "
        "handler driven as Lambda's event source mapping would) and report whether the cache equals the table. "
        "The same --seed replays the same run.",
    )
    parser.add_argument("--changes", type=_at_least(1), default=defaults.changes, help="table writes (default: 300)")
    parser.add_argument("--keys", type=_at_least(1), default=defaults.keys, help="distinct locations (default: 25)")
    parser.add_argument(
        "--batch-size", type=_between(1, 10_000), default=defaults.batch_size, help="BatchSize (default: 100)"
    )
    parser.add_argument(
        "--fault-rate",
        type=_rate,
        default=defaults.fault_rate,
        help="share of Momento set/delete/publish calls the server fails, mixing UNAVAILABLE, DEADLINE_EXCEEDED and "
        "rate-limit RESOURCE_EXHAUSTED (default: 0)",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the workload, the faults and the backoff jitter"
    )
    parser.add_argument(
        "--max-retries",
        type=_between(-1, 10_000),
        default=defaults.max_retries,
        help="MaximumRetryAttempts of the mapping (default: 5; -1: until the record expires)",
    )
    parser.add_argument(
        "--timeout",
        dest="timeout_seconds",
        type=_between(1, 900),
        default=defaults.timeout_seconds,
        help="the function's timeout in seconds of virtual Lambda time; its retries stop in time for the reply "
        "(default: 60)",
    )
    parser.add_argument(
        "--redrive", action="store_true", help="at the end, drain the DLQ back into the cache and compare again"
    )
    parser.add_argument("--show", type=_at_least(0), default=defaults.show, help="keys listed in the report")
    parser.add_argument("--log-file", type=Path, help="where the handler's logs go (default: a new temp dir)")
    args = parser.parse_args(argv)
    return DemoOptions(**vars(args))


def _at_least(low: int) -> Callable[[str], int]:
    return _between(low, None)


def _between(low: int, high: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {low}..{high}" if high is not None else f"must be >= {low}")
        return value

    return parse


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return value
