"""The benchmark run: start the local Momento server in its own process, take every measurement, write the results.

Measurements run one after another in one run (throughput and hot keys in this process against the server
process; cold start and memory in fresh child processes), so every ratio compares figures taken minutes apart on
the same machine.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.cold_start import ColdStartFigures, measure_cold_start
from benchmarks.cpu_study import CpuFigures, CpuStudy
from benchmarks.environment import BENCH_CACHE, UNSET_VARIABLES, handler_environment
from benchmarks.memory import MemoryFigures, measure_memory
from benchmarks.throughput import HotKeyFigures, ThroughputBench, ThroughputFigures
from benchmarks.topic_operations import TopicOperations, count_topic_operations

__all__ = ["QUICK", "BenchmarkOptions", "BenchmarkResults", "MachineInfo", "run_benchmark"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def _template_defaults() -> dict[str, int]:
    """The deployment the figures are stated for: the template's default MemorySize, MaxInFlight and BatchSize."""
    from samcli.yamlhelper import yaml_parse  # the SAM CLI's parser reads the template's short-form intrinsics

    parameters = yaml_parse((REPO_ROOT / "template.yaml").read_text())["Parameters"]
    return {name: int(parameters[name]["Default"]) for name in ("MemorySize", "MaxInFlight", "BatchSize")}


TEMPLATE_DEFAULTS = _template_defaults()


@dataclass(frozen=True)
class BenchmarkOptions:
    """What to measure and how often. The defaults are the full run (a few minutes on two cores)."""

    sizes: tuple[int, ...] = (100, 1_000, 10_000)
    rounds: int = 5
    hot_changes: int = 1_000
    hot_keys: int = 10
    cold_rounds: int = 15
    uncompiled_rounds: int = 5
    memory_records: int = 10_000
    memory_item_bytes: int = 1024
    memory_mb: int = TEMPLATE_DEFAULTS["MemorySize"]
    max_in_flight: int = TEMPLATE_DEFAULTS["MaxInFlight"]
    batch_size: int = TEMPLATE_DEFAULTS["BatchSize"]  # one request charge per batch
    memory_sizes: tuple[int, ...] = (512, 1024, 1769)  # costed and checked for shard headroom
    cpu_changes: int = 1_000
    cpu_rounds: int = 15
    subscribers: tuple[int, ...] = (1, 2)  # topic subscribers attached while topic operations are counted
    packed_handler: bool = True  # measure the handler with TOPIC_PACKING=on when it packs
    output: Path = REPO_ROOT / "benchmarks" / "results.md"
    profile: Path | None = None
    quick: bool = False


#: Small sizes for smoke tests: every code path, a few seconds, figures not comparable with the targets.
QUICK = BenchmarkOptions(
    sizes=(20, 100),
    rounds=1,
    hot_changes=100,
    hot_keys=10,
    cold_rounds=1,
    uncompiled_rounds=1,
    memory_records=200,
    cpu_changes=100,
    cpu_rounds=1,
    subscribers=(1,),
    quick=True,
)


@dataclass(frozen=True)
class MachineInfo:
    """Where and when the figures were taken."""

    cpu_count: int
    cpu_model: str
    python: str
    platform: str
    date: str
    load_average: tuple[float, float, float] | None

    @classmethod
    def current(cls) -> MachineInfo:
        return cls(
            cpu_count=os.cpu_count() or 0,
            cpu_model=_cpu_model(),
            python=platform.python_version(),
            platform=platform.platform(),
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
        )


@dataclass
class BenchmarkResults:
    """Every figure of one run."""

    options: BenchmarkOptions
    machine: MachineInfo
    throughput: list[ThroughputFigures] = field(default_factory=list)
    hot_keys: HotKeyFigures | None = None
    cold_start: ColdStartFigures | None = None
    memory: MemoryFigures | None = None
    elapsed_seconds: float = 0.0
    end_load_average: tuple[float, float, float] | None = None
    stub_build_us: float | None = None  # the SDK's per-call gRPC stub construction, see ThroughputBench
    cpu: CpuFigures | None = None
    topic_operations: TopicOperations | None = None


def run_benchmark(options: BenchmarkOptions, progress: Callable[[str], None] = lambda _: None) -> BenchmarkResults:
    """Take every measurement against a fresh local Momento server process; returns the results (not yet written)."""
    from local_pipeline.momento_server import start_server_process

    started = time.perf_counter()
    results = BenchmarkResults(options, MachineInfo.current())
    with start_server_process(caches=[BENCH_CACHE]) as server:
        progress(f"local Momento server at {server.endpoint}")
        base = {name: value for name, value in os.environ.items() if name not in UNSET_VARIABLES}
        env = handler_environment(server.endpoint, max_in_flight=options.max_in_flight, base=base)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "functions"), str(REPO_ROOT)])

        # Child processes first: they must not inherit anything the throughput bench does to this process.
        progress("cold start")
        # DLQ_URL set as deployed: the dead-letter queue's boto3 client must still not be imported at start.
        cold_env = dict(env, DLQ_URL="https://sqs.us-east-1.amazonaws.com/123456789012/bench-dlq")
        results.cold_start = measure_cold_start(
            cold_env, options.cold_rounds, uncompiled_rounds=options.uncompiled_rounds, progress=progress
        )
        progress(f"memory: {options.memory_records} records of ~{options.memory_item_bytes} B")
        results.memory = measure_memory(env, options.memory_records, options.memory_item_bytes, options.memory_mb)

        bench = ThroughputBench(
            server.endpoint,
            max_in_flight=options.max_in_flight,
            memory_mb=options.memory_mb,
            server_pid=server.process.pid,
        )
        try:
            results.throughput, results.hot_keys = bench.measure(
                options.sizes,
                options.rounds,
                hot_changes=options.hot_changes,
                hot_keys=options.hot_keys,
                progress=progress,
            )
            results.stub_build_us = bench.stub_build_microseconds()
            progress(f"topic operations, {options.cpu_changes} changes, subscribers {options.subscribers}")
            results.topic_operations = count_topic_operations(
                bench, changes=options.cpu_changes, subscribers=options.subscribers
            )
            results.cpu = _cpu_study(bench, server.endpoint, options, results.topic_operations.handler_packs, progress)
            if options.profile is not None:
                profile_size = 1_000 if 1_000 in options.sizes else max(options.sizes)
                progress(f"profile of one {profile_size}-record batch -> {options.profile}")
                bench.profile(profile_size, str(options.profile))
        finally:
            bench.close()
    results.elapsed_seconds = time.perf_counter() - started
    results.end_load_average = os.getloadavg() if hasattr(os, "getloadavg") else None
    return results


def _cpu_study(
    bench: ThroughputBench,
    endpoint: str,
    options: BenchmarkOptions,
    handler_packs: bool,
    progress: Callable[[str], None],
) -> CpuFigures:
    """CPU per change of every variant; the handler's packed mode too when it packs (a second processor)."""
    from stream_processor.app import StreamProcessor

    packed = None
    if options.packed_handler and handler_packs:
        environment = handler_environment(endpoint, max_in_flight=options.max_in_flight, base={})
        packed = StreamProcessor.from_environment({**environment, "TOPIC_PACKING": "on"})
    try:
        return CpuStudy(bench, changes=options.cpu_changes, packed_handler=packed).measure(options.cpu_rounds, progress)
    finally:
        if packed is not None:
            packed.momento.close()


def quick_options(options: BenchmarkOptions) -> BenchmarkOptions:
    """``options`` with the quick preset's sizes and rounds (output and profile kept)."""
    return replace(QUICK, output=options.output, profile=options.profile)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
