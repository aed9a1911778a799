"""How the benchmark runs the real handler: its environment, a Lambda context, quiet stdout and its batch summaries.

Powertools Logger (JSON lines) and Metrics (EMF) print on every invocation. They stay ON, at the template's default
level (INFO), because they are part of the real cost; only their destination changes: stdout is pointed at the null
device while the handler runs, so a terminal's speed does not enter the figures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "BENCH_CACHE",
    "BENCH_TOPIC",
    "UNSET_VARIABLES",
    "HandlerSummary",
    "SummaryCapture",
    "handler_environment",
    "lambda_context",
    "quiet_stdout",
]

BENCH_CACHE = "bench-cache"
BENCH_TOPIC = "bench-changes"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:bench-stream-processor"
#: Variables the benchmark's handler must not inherit: other Momento credential sources (load_settings accepts exactly
#: one), a DLQ (no network here) and a key template (the default keys are measured).
UNSET_VARIABLES = ("MOMENTO_API_KEY", "MOMENTO_API_KEY_SECRET", "MOMENTO_ENDPOINT", "DLQ_URL", "KEY_TEMPLATE")


def handler_environment(
    endpoint: str, *, max_in_flight: int = 64, base: Mapping[str, str] | None = None, **extra: str
) -> dict[str, str]:
    """The process environment for the handler talking to the local server at ``endpoint`` (host:port)."""
    env = {name: value for name, value in (os.environ if base is None else base).items() if name not in UNSET_VARIABLES}
    env.update(
        CACHE_NAME=BENCH_CACHE,
        TOPIC_NAME=BENCH_TOPIC,
        MOMENTO_LOCAL_ENDPOINT=endpoint,
        MAX_IN_FLIGHT=str(max_in_flight),
        POWERTOOLS_SERVICE_NAME="bench-stream-processor",
        POWERTOOLS_METRICS_NAMESPACE="Benchmark",
        POWERTOOLS_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def lambda_context(memory_mb: int, timeout_seconds: float = 900.0):
    """A Lambda context for one invocation (the runtime's shape, from local_pipeline)."""
    from local_pipeline.lambda_context import LambdaContext, new_log_stream_name

    return LambdaContext.for_invocation(
        function_arn=FUNCTION_ARN,
        timeout_seconds=timeout_seconds,
        memory_size_mb=memory_mb,
        log_stream_name=new_log_stream_name(time.time()),
    )


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Point file descriptor 1 at the null device for the block (Powertools' handler writes through sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


@dataclass(frozen=True)
class HandlerSummary:
    """The counts of one invocation, as the handler's "batch processed" log line reports them."""

    records: int
    sets: int
    deletes: int
    publishes: int
    superseded_writes: int
    failures: int

    @property
    def cache_writes(self) -> int:
        return self.sets + self.deletes


class SummaryCapture(logging.Handler):
    """Collects the handler's per-invocation summary from its logger (added next to Powertools' own handler)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.summaries: list[HandlerSummary] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() != "batch processed":
            return
        fields = HandlerSummary.__dataclass_fields__
        self.summaries.append(HandlerSummary(**{name: int(getattr(record, name, -1)) for name in fields}))

    def last(self) -> HandlerSummary:
        if not self.summaries:
            raise RuntimeError("the handler logged no 'batch processed' summary")
        return self.summaries[-1]
