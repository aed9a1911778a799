"""Throughput: the real handler next to the raw SDK limit, and hot keys next to distinct keys, in interleaved rounds.

The raw limit is the same ``set`` + ``publish`` calls (the handler's own cache keys, values, TTLs and messages, taken
from its plan before timing; see ``benchmarks.raw_sdk``) issued straight through ``CacheClientAsync`` /
``TopicClientAsync`` with the handler's configurations, at the same concurrency, on the handler's own event loop.
Handler and raw runs alternate in every round (and swap order each round) so machine drift hits both alike; figures
are medians over rounds. CPU time is the process's, every thread (``benchmarks.clocks``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from momento import Configurations, CredentialProvider, TopicConfigurations

from benchmarks.clocks import Usage, read_clocks
from benchmarks.environment import (
    BENCH_CACHE,
    BENCH_TOPIC,
    UNSET_VARIABLES,
    HandlerSummary,
    SummaryCapture,
    handler_environment,
    lambda_context,
    quiet_stdout,
)
from benchmarks.raw_sdk import KeyCalls, RawClients, key_calls, set_and_publish
from benchmarks.workload import TYPICAL_ITEMS, BatchShape, stream_batch

__all__ = ["HotKeyFigures", "Run", "ThroughputBench", "ThroughputFigures", "median"]

T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class Run:
    """One timed batch: wall seconds, process CPU seconds (every thread, gRPC's included) and cache writes issued."""

    changes: int
    seconds: float
    cpu_seconds: float
    cache_writes: int | None = None
    main_thread_cpu_seconds: float | None = None
    server_cpu_seconds: float | None = None
    collector_cpu_seconds: float = 0.0

    @classmethod
    def of(cls, changes: int, usage: Usage, cache_writes: int | None = None) -> Run:
        return cls(
            changes,
            usage.seconds,
            usage.cpu_seconds,
            cache_writes,
            usage.main_thread_cpu_seconds,
            usage.server_cpu_seconds,
            usage.collector_cpu_seconds,
        )

    @property
    def cpu_ms_per_change(self) -> float:
        return self.cpu_seconds / self.changes * 1000

    @property
    def changes_per_second(self) -> float:
        return self.changes / self.seconds

    @property
    def seconds_per_change(self) -> float:
        return self.seconds / self.changes


@dataclass
class ThroughputFigures:
    """Handler and raw-SDK runs of one batch size; ``ratios`` pairs the runs of each round (handler/raw throughput)."""

    size: int
    handler: list[Run] = field(default_factory=list)
    raw: list[Run] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [raw.seconds / handler.seconds for handler, raw in zip(self.handler, self.raw, strict=False)]

    @property
    def handler_rate(self) -> float:
        return median([run.changes_per_second for run in self.handler])

    @property
    def raw_rate(self) -> float:
        return median([run.changes_per_second for run in self.raw])

    @property
    def ratio(self) -> float:
        return median(self.ratios)

    @property
    def cpu_ratio(self) -> float:
        """Median over rounds of raw CPU / handler CPU: steadier than wall time when other load shares the CPUs."""
        pairs = zip(self.handler, self.raw, strict=False)
        return median([raw.cpu_seconds / handler.cpu_seconds for handler, raw in pairs])

    @property
    def handler_seconds(self) -> float:
        return median([run.seconds for run in self.handler])

    @property
    def raw_seconds(self) -> float:
        return median([run.seconds for run in self.raw])

    @property
    def handler_cpu_seconds(self) -> float:
        return median([run.cpu_seconds for run in self.handler])

    @property
    def raw_cpu_seconds(self) -> float:
        return median([run.cpu_seconds for run in self.raw])


@dataclass
class HotKeyFigures:
    """Hot-key batches (many changes over few keys) paired with the same number of changes on distinct keys."""

    changes: int
    keys: int
    hot: list[Run] = field(default_factory=list)
    distinct: list[Run] = field(default_factory=list)

    @property
    def cache_writes(self) -> list[int]:
        return [run.cache_writes for run in self.hot if run.cache_writes is not None]

    @property
    def gains(self) -> list[float]:
        return [distinct.seconds / hot.seconds for hot, distinct in zip(self.hot, self.distinct, strict=False)]

    @property
    def gain(self) -> float:
        return median(self.gains)


class ThroughputBench:
    """Runs the real handler (in this process) and the raw SDK against the local server at ``endpoint``."""

    def __init__(
        self, endpoint: str, *, max_in_flight: int = 64, memory_mb: int = 512, server_pid: int | None = None
    ) -> None:
        # The handler reads its configuration from the environment on first use, Powertools at import.
        for name in UNSET_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(handler_environment(endpoint, max_in_flight=max_in_flight))
        from stream_processor import app
        from stream_processor.observability import logger

        self._app = app
        app.processor.cache_clear()  # a processor built earlier in this process would point at another server
        self.processor = app.processor()
        self.max_in_flight = max_in_flight
        self.memory_mb = memory_mb
        self.server_pid = server_pid
        self.summaries = SummaryCapture()
        logger.addHandler(self.summaries)
        host, port = endpoint.rsplit(":", 1)
        self.credentials = CredentialProvider.for_momento_local(host, int(port))
        self._opened: list[RawClients] = []
        self.raw = self.raw_clients(Configurations.Lambda.latest(), TopicConfigurations.Default.latest())

    def raw_clients(self, cache_configuration: Any, topic_configuration: Any, *, keep: bool = True) -> RawClients:
        """SDK clients with these configurations on the handler's loop (channels bind to it); closed with the bench
        when ``keep``, else by the caller."""
        from momento import CacheClientAsync, TopicClientAsync

        ttl = timedelta(seconds=self.processor.settings.default_ttl_seconds)

        async def build() -> RawClients:
            cache = CacheClientAsync(cache_configuration, self.credentials, ttl)
            return RawClients(cache, TopicClientAsync(topic_configuration, self.credentials), BENCH_CACHE, BENCH_TOPIC)

        clients = self.processor.momento.run(build())
        if keep:
            self._opened.append(clients)
        return clients

    def timed(self, work: Callable[[], T]) -> tuple[T, Usage]:
        """Run ``work`` and read every clock around it (this process, its main thread, the server process).

        Garbage from earlier runs is collected first, so that no run pays for another's collection.
        """
        gc.collect()
        started = read_clocks(self.server_pid)
        result = work()
        return result, started.until(read_clocks(self.server_pid))

    # --- the handler ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def using(self, processor: Any) -> Iterator[None]:
        """The real handler runs with ``processor`` in the block (``app.handler`` looks up ``app.processor``)."""
        original = self._app.processor
        self._app.processor = lambda: processor
        try:
            yield
        finally:
            self._app.processor = original

    def run_handler(self, event: dict[str, Any]) -> tuple[Run, HandlerSummary]:
        """One invocation of the real handler; raises if any record failed (the figures would be meaningless)."""
        context = lambda_context(self.memory_mb)
        self.summaries.summaries.clear()  # a run that logs no summary must not be checked against an older one
        with quiet_stdout():
            response, usage = self.timed(lambda: self._app.handler(event, context))
        summary = self.summaries.last()
        changes = len(event["Records"])
        if response["batchItemFailures"] or summary.failures or not summary.publishes:
            raise RuntimeError(f"the handler did not process the whole batch: {summary}, {response}")
        if summary.publishes != changes and not self._app.processor().settings.topic_packing:
            raise RuntimeError(f"the handler did not publish every change: {summary}")
        return Run.of(changes, usage, summary.cache_writes), summary

    # --- the raw SDK ----------------------------------------------------------------------------------------

    def raw_calls(self, event: dict[str, Any]) -> list[KeyCalls]:
        """The handler's own calls for this event (keys, values, TTLs, messages), taken from its plan."""
        return key_calls(event, self.processor.rules)

    def run_raw(self, calls: list[KeyCalls], changes: int, clients: RawClients | None = None, workers: int = 0) -> Run:
        """Issue ``calls`` through the SDK (per key a set, then its publishes), ``max_in_flight`` keys at a time."""
        run, in_flight = self.processor.momento.run, workers or self.max_in_flight
        failed, usage = self.timed(lambda: run(set_and_publish(calls, clients or self.raw, in_flight)))
        if failed:
            raise RuntimeError(f"{failed} raw SDK calls failed")
        return Run.of(changes, usage, len(calls))

    # --- rounds ---------------------------------------------------------------------------------------------

    def measure(
        self,
        sizes: Sequence[int],
        rounds: int,
        *,
        hot_changes: int,
        hot_keys: int,
        progress: Callable[[str], None] = lambda _: None,
    ) -> tuple[list[ThroughputFigures], HotKeyFigures]:
        """Interleaved rounds over every size, plus the hot-key pair; one warm-up round first (not recorded)."""
        events = {size: stream_batch(BatchShape(size, key_prefix=f"n{size}", **TYPICAL_ITEMS)) for size in sizes}
        calls = {size: self.raw_calls(event) for size, event in events.items()}
        hot_event = stream_batch(BatchShape(hot_changes, keys=hot_keys, key_prefix="hot", **TYPICAL_ITEMS))
        hot_distinct = stream_batch(BatchShape(hot_changes, key_prefix="cold", **TYPICAL_ITEMS))
        figures = {size: ThroughputFigures(size) for size in sizes}
        hot = HotKeyFigures(hot_changes, hot_keys)

        for size in sizes:  # warm-up: connections opened, allocators and caches grown, as in a warm container
            if size <= 1000:
                self.run_handler(events[size])
                self.run_raw(calls[size], size)
        for number in range(rounds):
            handler_first = number % 2 == 0  # swapping the order cancels any first-or-second advantage
            for size in sizes:
                progress(f"round {number + 1}/{rounds}: {size} records")
                if not handler_first:
                    figures[size].raw.append(self.run_raw(calls[size], size))
                figures[size].handler.append(self.run_handler(events[size])[0])
                if handler_first:
                    figures[size].raw.append(self.run_raw(calls[size], size))
            progress(f"round {number + 1}/{rounds}: hot keys")
            if not handler_first:
                hot.distinct.append(self.run_handler(hot_distinct)[0])
            hot.hot.append(self.run_handler(hot_event)[0])
            if handler_first:
                hot.distinct.append(self.run_handler(hot_distinct)[0])
        return [figures[size] for size in sizes], hot

    def stub_build_microseconds(self) -> float | None:
        """CPU the SDK spends building a cache gRPC stub for each call, read on the raw SDK's client (0 when it
        reuses one).

        momento 1.29 builds a new ``ScsStub`` (one handle per RPC of the cache service) on every data call. None
        when the SDK's internals are not the expected ones (another SDK version).
        """
        clients = getattr(self.raw.cache, "_data_clients", None)
        manager = getattr(clients[0], "_grpc_manager", None) if clients else None
        if manager is None or not callable(getattr(manager, "async_stub", None)):
            return None

        async def measure() -> float:
            if manager.async_stub() is manager.async_stub():
                return 0.0
            builds = 2000
            started = time.process_time()
            for _ in range(builds):
                manager.async_stub()
            return (time.process_time() - started) / builds * 1e6

        return self.processor.momento.run(measure())

    def profile(self, size: int, path: str) -> None:
        """Write a pyinstrument profile (text) of one handler invocation of ``size`` records to ``path``."""
        from pyinstrument import Profiler

        event = stream_batch(BatchShape(size, key_prefix=f"n{size}", **TYPICAL_ITEMS))
        self.run_handler(event)
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        with profiler:
            self.run_handler(event)
        with open(path, "w", encoding="utf-8") as output:
            output.write(profiler.output_text(unicode=True, show_all=False))

    def close(self) -> None:
        """Close the raw clients and the handler's own (before the server stops, so no channel sees it go away)."""
        runtime = self.processor.momento
        for clients in self._opened:
            runtime.run(clients.close())
        runtime.close()
        self._app.processor.cache_clear()
