"""Memory: peak RSS of a fresh process that imports the handler, builds its clients and handles one large batch.

``python -m benchmarks.memory --records N`` (with the handler's environment set) prints one JSON line with the
process's peak RSS (``ru_maxrss``) at three points: after import and client set-up, with the event loaded (as the
runtime holds it: the JSON bytes and the parsed object), and after handling it. ``measure_memory`` runs that child.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["MemoryFigures", "measure_memory", "peak_rss_mb"]

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class MemoryFigures:
    """Peak RSS in MB at each point of the child's life, for one batch of ``records`` items of ``item_bytes``."""

    records: int
    item_bytes: int
    after_import_mb: float
    with_event_mb: float
    peak_mb: float
    event_bytes: int


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure_memory(env: Mapping[str, str], records: int, item_bytes: int, memory_mb: int) -> MemoryFigures:
    """Run the child process (the Momento server must already be up at the env's MOMENTO_LOCAL_ENDPOINT)."""
    command = [sys.executable, "-m", "benchmarks.memory", "--records", str(records), "--item-bytes", str(item_bytes)]
    command += ["--memory-mb", str(memory_mb)]
    result = subprocess.run(command, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return MemoryFigures(**json.loads(result.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--item-bytes", type=int, default=1024)
    parser.add_argument("--memory-mb", type=int, default=512)
    args = parser.parse_args(argv)

    import stream_processor.app as app
    from benchmarks.environment import lambda_context, quiet_stdout
    from benchmarks.workload import BatchShape, stream_batch_json

    app.processor()
    after_import = peak_rss_mb()
    spread = args.item_bytes // 10  # ~1 KB items: within 10% of the size asked for
    body = stream_batch_json(BatchShape(args.records, None, args.item_bytes - spread, args.item_bytes + spread))
    event = json.loads(body)
    with_event = peak_rss_mb()
    with quiet_stdout():
        response = app.handler(event, lambda_context(args.memory_mb))
    if response["batchItemFailures"]:
        raise SystemExit(f"the handler reported {len(response['batchItemFailures'])} failures")
    figures = MemoryFigures(args.records, args.item_bytes, after_import, with_event, peak_rss_mb(), len(body))
    print(json.dumps(asdict(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
