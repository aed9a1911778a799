"""Command line of the benchmark: ``python -m benchmarks [--quick] [--rounds N] [--output PATH] [--profile PATH]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from local_pipeline.environment import functions_on_path, quiet_grpc_core

quiet_grpc_core()  # before anything imports grpc: the core's own log lines stay off the terminal
functions_on_path()

from benchmarks.report import render_markdown, render_text  # noqa: E402  (after the two calls above)
from benchmarks.suite import BenchmarkOptions, quick_options, run_benchmark  # noqa: E402


def parse_options(argv: Sequence[str] | None = None) -> BenchmarkOptions:
    defaults = BenchmarkOptions()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and one round: a smoke run of the machinery")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds per figure (default {defaults.rounds})")
    parser.add_argument(
        "--cold-rounds", type=int, help=f"fresh interpreters of each kind (default {defaults.cold_rounds})"
    )
    parser.add_argument("--sizes", help="comma-separated batch sizes (default 100,1000,10000)")
    parser.add_argument("--memory-mb", type=int, help=f"Lambda memory size for the cost (default {defaults.memory_mb})")
    parser.add_argument(
        "--cpu-rounds", type=int, help=f"rounds of the CPU-per-change variants (default {defaults.cpu_rounds})"
    )
    parser.add_argument(
        "--no-packed-handler",
        action="store_true",
        help="never run the handler with TOPIC_PACKING=on (by default it is measured when it packs)",
    )
    parser.add_argument("--output", type=Path, help="results file (default benchmarks/results.md)")
    parser.add_argument("--profile", type=Path, help="also write a pyinstrument profile of one 1,000-record batch here")
    args = parser.parse_args(argv)

    options = quick_options(defaults) if args.quick else defaults
    changes = {
        "rounds": args.rounds,
        "cold_rounds": args.cold_rounds,
        "memory_mb": args.memory_mb,
        "cpu_rounds": args.cpu_rounds,
        "packed_handler": False if args.no_packed_handler else None,
        "output": args.output,
        "profile": args.profile,
        "sizes": tuple(sorted(int(size) for size in args.sizes.split(","))) if args.sizes else None,
    }
    options = replace(options, **{name: value for name, value in changes.items() if value is not None})
    if min(options.rounds, options.cold_rounds, options.cpu_rounds) < 1 or not options.sizes or min(options.sizes) < 1:
        parser.error("rounds, cold rounds and sizes must be positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    results = run_benchmark(options, progress=lambda step: print(f"· {step}", file=sys.stderr, flush=True))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(render_markdown(results), encoding="utf-8")
    print(render_text(results))
    print(f"\nresults written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
