"""CPU per change, side by side: the handler, the raw SDK, their parts, the SDK's options and the packed mode.

Every variant processes the same batch (distinct keys, ~300-byte change messages, the handler's calls) once per
round, in an order that reverses from round to round and keeps compared variants next to each other; figures are
medians and ranges over rounds of the CPU time of this process, every thread (what Lambda bills), per change.
Variants:

- the handler as shipped, and with each data channel building a gRPC stub per call again (the SDK's own behaviour,
  i.e. without ``momento_clients._reuse_cache_stubs``), and in packed mode when the handler packs, also with
  CPython's default collector threshold (without ``gc_settings``);
- the raw SDK: a set and a publish per change; sets alone and publishes alone (the split); sets plus packed topic
  messages (the packed mode emulated with the SDK alone); sets with the stub-reuse patch applied;
- the packed mode's floor: the handler's packed-mode calls issued through clients set up as the handler's (the
  stub-reuse patch, no SDK retry strategy), sets and then packs, with none of the handler's own work (reading and
  checking records, the plan, the change messages), which is what packed mode costs minus this;
- public SDK configuration choices, each on the calls it concerns (cache options on sets alone, topic options on
  publishes alone, next to the same calls with the handler's configurations): a retry strategy that never
  retries, no retry strategy at all, keepalive pings on for the cache client, keepalive off for the topic client;
- method checks: the handler and the raw SDK with one request in flight, and the raw SDK building fresh clients for
  each batch, to show what other ways of measuring report.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from momento import Configurations, TopicConfigurations

from benchmarks.compared_settings import default_young_threshold, sdk_setting_clients, stubs_built_per_call
from benchmarks.raw_sdk import RawClients, publishes_only, set_and_publish, sets_and_packs, sets_only, sets_then_packs
from benchmarks.throughput import Run, ThroughputBench, median
from benchmarks.workload import TYPICAL_ITEMS, BatchShape, stream_batch

__all__ = ["CpuFigures", "CpuStudy", "Variant", "VariantFigures"]


@dataclass(frozen=True)
class Variant:
    """One way of processing the batch; ``run`` processes it once and returns the measured run."""

    name: str
    label: str
    group: str  # "main", "split", "stub reuse", "SDK configuration", "method"
    run: Callable[[], Run]


@dataclass
class VariantFigures:
    """The runs of one variant over the rounds."""

    name: str
    label: str
    group: str
    runs: list[Run] = field(default_factory=list)

    @property
    def cpu_ms(self) -> float:
        """Median CPU time per change (ms), this process, every thread."""
        return median([run.cpu_ms_per_change for run in self.runs])

    @property
    def cpu_ms_range(self) -> tuple[float, float]:
        values = [run.cpu_ms_per_change for run in self.runs]
        return min(values), max(values)

    @property
    def main_thread_ms(self) -> float:
        return median([(run.main_thread_cpu_seconds or 0.0) / run.changes * 1000 for run in self.runs])

    @property
    def collector_ms(self) -> float:
        """Median CPU time per change in the cyclic garbage collector (ms)."""
        return median([run.collector_cpu_seconds / run.changes * 1000 for run in self.runs])

    @property
    def server_ms(self) -> float | None:
        values = [run.server_cpu_seconds / run.changes for run in self.runs if run.server_cpu_seconds is not None]
        return statistics.median(values) * 1000 if values else None

    @property
    def wall_ms(self) -> float:
        return median([run.seconds / run.changes * 1000 for run in self.runs])


@dataclass
class CpuFigures:
    """Every variant's figures, the batch they processed and how many rounds were taken."""

    changes: int
    message_bytes: float  # mean change message size
    rounds: int
    max_in_flight: int
    topic_max_bytes: int
    variants: dict[str, VariantFigures] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def cpu_ms(self, name: str) -> float | None:
        figures = self.variants.get(name)
        return figures.cpu_ms if figures is not None and figures.runs else None

    def paired_ratios(self, name: str, baseline: str) -> list[float]:
        """Round by round, CPU of ``name`` / CPU of ``baseline`` (both ran in the same round)."""
        pairs = zip(self.variants[name].runs, self.variants[baseline].runs, strict=False)
        return [run.cpu_seconds / base.cpu_seconds for run, base in pairs]


class CpuStudy:
    """Builds the variants on a ThroughputBench (its handler, event loop and server) and measures them in rounds."""

    def __init__(self, bench: ThroughputBench, *, changes: int = 1_000, packed_handler: Any = None) -> None:
        self.bench = bench
        self.event = stream_batch(BatchShape(changes, key_prefix="cpu", **TYPICAL_ITEMS))
        self.calls = bench.raw_calls(self.event)
        self.changes = changes
        self.packed_handler = packed_handler  # a StreamProcessor with TOPIC_PACKING=on, when the handler packs
        self.topic_max_bytes = bench.processor.settings.topic_max_bytes
        settings = sdk_setting_clients(bench.raw_clients)
        self.clients = settings.clients
        self.raw_reuses_stubs = "stub reuse" in settings.reusing_stubs
        self.floor_reuses_stubs = "as the handler" in settings.reusing_stubs

    # --- the variants ---------------------------------------------------------------------------------------

    def variants(self) -> list[Variant]:
        """The variants in the order they run, forwards and backwards in turn, so that each variant runs next to
        (or within two of) the one it is compared with, under the same machine conditions."""
        bench, raw, clients = self.bench, self.bench.raw, self.clients
        handler = lambda: bench.run_handler(self.event)[0]  # noqa: E731 - named for the table below
        table: list[tuple[str, str, str, Callable[[], Run]] | None] = [
            (
                (
                    "handler no stub reuse",
                    "handler without the stub-reuse patch (a stub per call, as the SDK does)",
                    "stub reuse",
                    self._run_handler_building_stubs,
                )
                if bench.processor.momento.reuses_stubs
                else None
            ),
            ("handler", "handler, default mode (as shipped)", "main", handler),
            ("raw", "raw SDK: a set and a publish per change", "main", lambda: self._raw(set_and_publish, raw)),
            (
                ("handler packed", "handler, TOPIC_PACKING=on", "main", self._run_packed_handler)
                if self.packed_handler is not None
                else None
            ),
            (
                (
                    "floor packed",
                    "raw SDK set up as the handler (stub reuse, no SDK retry strategy): sets, then packed topic "
                    "messages (the packed mode's calls alone)",
                    "floor",
                    lambda: self._raw(self._packed_after_sets, clients["as the handler"]),
                )
                if self.packed_handler is not None and self.floor_reuses_stubs
                else None
            ),
            (
                (
                    "handler packed default gc",
                    "handler, TOPIC_PACKING=on, with CPython's default collector threshold (700)",
                    "collector",
                    self._run_packed_handler_default_gc,
                )
                if self.packed_handler is not None
                else None
            ),
            (
                "raw packed",
                f"raw SDK: a set per change, packed topic messages of ≤ {self.topic_max_bytes:,} B (emulated)",
                "main",
                lambda: self._raw(self._packed, raw),
            ),
            (
                "raw sets never retry",
                "raw SDK sets only, a retry strategy that never retries (a public RetryStrategy)",
                "SDK configuration",
                lambda: self._raw(sets_only, clients["never retry"]),
            ),
            (
                "raw sets no retry",
                "raw SDK sets only, no retry strategy (no retry interceptor, as the handler's cache client)",
                "SDK configuration",
                lambda: self._raw(sets_only, clients["no retry"]),
            ),
            ("raw sets", "raw SDK: sets only", "split", lambda: self._raw(sets_only, raw)),
            (
                (
                    "raw sets stub reuse",
                    "raw SDK sets only, with the stub-reuse patch applied",
                    "stub reuse",
                    lambda: self._raw(sets_only, clients["stub reuse"]),
                )
                if self.raw_reuses_stubs
                else None
            ),
            (
                "raw sets keepalive",
                "raw SDK sets only, keepalive pings on (Configurations.InRegion.Default)",
                "SDK configuration",
                lambda: self._raw(sets_only, clients["keepalive"]),
            ),
            ("raw publishes", "raw SDK: publishes only", "split", lambda: self._raw(publishes_only, raw)),
            (
                "raw publishes no keepalive",
                "raw SDK publishes only, topic keepalive pings off",
                "SDK configuration",
                lambda: self._raw(publishes_only, clients["no topic keepalive"]),
            ),
            ("handler 1 in flight", "handler with MAX_IN_FLIGHT=1", "method", lambda: self._with_in_flight(1, handler)),
            (
                "raw 1 in flight",
                "raw SDK, one request in flight",
                "method",
                lambda: self._raw(set_and_publish, raw, workers=1),
            ),
            (
                "raw fresh clients",
                "raw SDK, new clients built (and closed) for each batch",
                "method",
                self._run_with_fresh_clients,
            ),
        ]
        return [Variant(*row) for row in table if row is not None]

    def _raw(self, issue: Callable[..., Any], clients: RawClients, *, workers: int = 0) -> Run:
        run = self.bench.processor.momento.run
        in_flight = workers or self.bench.max_in_flight
        failed, usage = self.bench.timed(lambda: run(issue(self.calls, clients, in_flight)))
        if failed:
            raise RuntimeError(f"{failed} raw SDK calls failed")
        return Run.of(self.changes, usage, len(self.calls))

    def _packed(self, calls: Sequence[Any], clients: RawClients, workers: int) -> Any:
        return sets_and_packs(calls, clients, workers, self.topic_max_bytes)

    def _packed_after_sets(self, calls: Sequence[Any], clients: RawClients, workers: int) -> Any:
        return sets_then_packs(calls, clients, workers, self.topic_max_bytes)

    def _run_packed_handler_default_gc(self) -> Run:
        with default_young_threshold():
            return self._run_packed_handler()

    def _run_handler_building_stubs(self) -> Run:
        with stubs_built_per_call(self.bench.processor.momento.cache):
            return self.bench.run_handler(self.event)[0]

    def _run_packed_handler(self) -> Run:
        with self.bench.using(self.packed_handler):
            return self.bench.run_handler(self.event)[0]

    def _with_in_flight(self, in_flight: int, work: Callable[[], Run]) -> Run:
        processor = self.bench.processor
        settings = processor.settings
        processor.settings = dataclasses.replace(settings, max_in_flight=in_flight)
        try:
            return work()
        finally:
            processor.settings = settings

    def _run_with_fresh_clients(self) -> Run:
        bench = self.bench

        def batch() -> int:
            clients = bench.raw_clients(
                Configurations.Lambda.latest(), TopicConfigurations.Default.latest(), keep=False
            )
            try:
                return bench.processor.momento.run(set_and_publish(self.calls, clients, bench.max_in_flight))
            finally:
                bench.processor.momento.run(clients.close())

        failed, usage = bench.timed(batch)
        if failed:
            raise RuntimeError(f"{failed} raw SDK calls failed")
        return Run.of(self.changes, usage, len(self.calls))

    # --- rounds ---------------------------------------------------------------------------------------------

    def measure(self, rounds: int, progress: Callable[[str], None] = lambda _: None) -> CpuFigures:
        """One warm-up pass (not recorded), then ``rounds`` rounds, each variant once, forwards and backwards."""
        messages = [len(message) for call in self.calls for message in call.messages]
        figures = CpuFigures(
            self.changes,
            statistics.mean(messages),
            rounds,
            self.bench.max_in_flight,
            self.topic_max_bytes,
        )
        variants = self.variants()
        for variant in variants:
            figures.variants[variant.name] = VariantFigures(variant.name, variant.label, variant.group)
            variant.run()
        for number in range(rounds):
            progress(f"CPU per change: round {number + 1}/{rounds} ({len(variants)} variants)")
            for variant in reversed(variants) if number % 2 else variants:
                figures.variants[variant.name].runs.append(variant.run())
        if not self.bench.processor.momento.reuses_stubs:
            figures.notes.append("The handler's stub-reuse patch is not active (another SDK version): not compared.")
        return figures
