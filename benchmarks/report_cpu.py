"""The CPU-per-change sections of the results: CPU per change, how it is measured, packed topic messages, and shard
headroom and cost by memory size."""

from __future__ import annotations

from benchmarks.capacity import FULL_RATE_SHARD, capacity, memory_to_keep_up
from benchmarks.cost import LambdaPricing, PipesPricing
from benchmarks.cpu_comparisons import (
    INDEPENDENT_FIGURE,
    PACKED_VS_DEFAULT_TARGET,
    PACKED_VS_RAW_TARGET,
    PREVIOUS_FIGURE,
    CpuComparisons,
)
from benchmarks.markdown import table

__all__ = ["CpuReport"]


class CpuReport(CpuComparisons):
    """The comparisons, their summary rows (``summary_rows``) and the results file's sections (``sections``)."""

    def sections(self) -> list[str]:
        return [
            *self._cpu_section(),
            *self._method_section(),
            *self._packed_section(),
            *self._capacity_section(),
        ]

    def _cpu_section(self) -> list[str]:
        cpu = self.cpu
        lines = [
            "## CPU per change",
            "",
            f"One batch of {cpu.changes:,} INSERTs on distinct keys (change messages of {cpu.message_bytes:.0f} B on "
            f"average), processed once per round by every variant below, {cpu.rounds} rounds, in the order listed and "
            "backwards in turn (compared variants run next to each other), "
            f"{cpu.max_in_flight} requests in flight unless stated. CPU: this process, "
            "every thread (the event loop's and gRPC's own), per change; median and range over rounds. Main thread: "
            "the event loop's thread alone. Garbage collector: the part of it spent in CPython's cyclic collector. "
            "Server: the local server process, for the same batch (its work is "
            "Momento's in production).",
            "",
        ]
        rows = []
        for figures in cpu.variants.values():
            if not figures.runs:
                continue
            low, high = figures.cpu_ms_range
            server = figures.server_ms
            rows.append(
                (
                    figures.label,
                    figures.group,
                    f"{figures.cpu_ms:.3f}",
                    f"{low:.3f} to {high:.3f}",
                    f"{figures.main_thread_ms:.3f}",
                    f"{figures.collector_ms:.4f}",
                    "—" if server is None else f"{server:.3f}",
                    f"{figures.wall_ms:.3f}",
                )
            )
        lines += table(
            (
                "Variant",
                "Group",
                "CPU ms/change",
                "Range",
                "Main thread",
                "Garbage collector",
                "Server process",
                "Wall ms/change",
            ),
            rows,
        )
        lines += ["", *self._comparisons(), ""]
        lines += [f"- {note}" for note in cpu.notes]
        return lines

    def _comparisons(self) -> list[str]:
        per_round = self._per_round
        ratios = [
            ("handler / raw SDK", per_round(lambda handler, raw: handler / raw, "handler", "raw")),
            ("raw SDK with packed topic messages / raw SDK", per_round(lambda p, raw: p / raw, "raw packed", "raw")),
        ]
        calls = [("a cache set", self.cpu_ms("raw sets")), ("a topic publish", self.cpu_ms("raw publishes"))]
        savings = [
            (
                "the collector threshold (gc_settings), packed mode",
                self.saving("handler packed", "handler packed default gc"),
            ),
            ("the stub-reuse patch, per set call", self.saving("raw sets stub reuse", "raw sets")),
            ("the stub-reuse patch, per change (its set's saving over the handler's CPU)", self.stub_reuse_saving()),
            ("the stub-reuse patch, whole handler runs with and without it", self.handler_stub_reuse_saving()),
            ("a retry strategy that never retries, per set call", self.saving("raw sets never retry", "raw sets")),
            ("no retry strategy (no retry interceptor), per set call", self.saving("raw sets no retry", "raw sets")),
            ("cache keepalive pings on, per set call", self.saving("raw sets keepalive", "raw sets")),
            ("topic keepalive pings off, per publish", self.saving("raw publishes no keepalive", "raw publishes")),
        ]
        lines = ["Paired per round (median, range over rounds):", ""]
        lines += [f"- {label}: {spread.ratio()}" for label, spread in ratios if spread]
        lines += [f"- CPU per call of {label} (raw SDK): {spread.ms()}" for label, spread in calls if spread]
        lines += [f"- CPU saved by {label}: {spread.percent()}" for label, spread in savings if spread]
        if self.stub_build_us:
            lines.append(f"- CPU of building the SDK's cache stub alone: {self.stub_build_us:.0f} µs per call")
        return [*lines, "", "A negative saving is more CPU. Ranges that span zero are within the noise."]

    def _method_section(self) -> list[str]:
        cpu = self.cpu
        ways = []

        def add(way: str, handler: float | None, raw: float | None) -> None:
            ways.append((way, "—" if handler is None else f"{handler:.3f}", "—" if raw is None else f"{raw:.3f}"))

        handler, raw = cpu.variants.get("handler"), cpu.variants.get("raw")
        if handler is None or raw is None or not handler.runs or not raw.runs:
            return []
        add(
            f"this process, every thread, {cpu.max_in_flight} in flight (this benchmark; what Lambda bills)",
            handler.cpu_ms,
            raw.cpu_ms,
        )
        add("the event loop's thread alone (gRPC's threads left out)", handler.main_thread_ms, raw.main_thread_ms)
        if handler.server_ms is not None and raw.server_ms is not None:
            add(
                "this process plus the local server process (both sides of every call)",
                handler.cpu_ms + handler.server_ms,
                raw.cpu_ms + raw.server_ms,
            )
        one_handler, one_raw = cpu.variants.get("handler 1 in flight"), cpu.variants.get("raw 1 in flight")
        if one_handler and one_raw and one_handler.runs and one_raw.runs:
            add("this process, every thread, one request in flight", one_handler.cpu_ms, one_raw.cpu_ms)
        fresh = cpu.variants.get("raw fresh clients")
        if fresh and fresh.runs:
            add("new clients for every batch (set-up inside the measurement)", None, fresh.cpu_ms)
        add("wall time per change, not CPU", handler.wall_ms, raw.wall_ms)
        lines = [
            "## How CPU per change is measured",
            "",
            f"An independent measurement on this machine reported {INDEPENDENT_FIGURE}; this benchmark's previous "
            f"results said {PREVIOUS_FIGURE}. Both read CPU time for 1,000-record batches; they differ in what "
            "they count. The same rounds, read every way at once (ms per change, medians):",
            "",
        ]
        lines += table(("Way of measuring", "Handler", "Raw SDK"), ways)
        lines += [
            "",
            "- What Lambda bills is the first line: the CPU time of the process that makes the calls, all its "
            "threads (the event loop's, and gRPC's completion-queue poller and timer threads, which the second line "
            "leaves out), for the batch alone, at the concurrency the function runs (MAX_IN_FLIGHT "
            f"{cpu.max_in_flight}). This benchmark has always read it (`time.process_time()`, every thread).",
            "- Adding the local server's CPU (third line) counts work that Momento's machines do in production: the "
            "server spends about as much per call as the client, so the figure roughly doubles.",
            "- With one request in flight (fourth line) every call wakes the event loop and gRPC's poller on its own; "
            f"at {cpu.max_in_flight} in flight one wake-up serves many completions. CPU per change roughly doubles and "
            "the SDK's per-call cost swamps the handler's own work, so handler and raw SDK come out close: the "
            "shape of the independent figure.",
            "- Building clients per batch and warming up change little (fifth line); wall time is not CPU time.",
            "- The previous figures were the first line with larger change messages (items of 200 B to 1 KB, about "
            "800-byte messages) on a heavily loaded machine; the figures here use ~300-byte messages, as the "
            "targets are stated for.",
        ]
        return [*lines, ""]

    def _packed_section(self) -> list[str]:
        lines = ["## Packed topic messages", ""]
        packed = self.packed_ms()
        if self.packed_measured:
            lines.append("The handler packs (`TOPIC_PACKING=on`): its figures are measured.")
        elif packed is not None:
            lines.append(
                "The handler does not pack yet: its packed-mode CPU is estimated per round as its default-mode CPU "
                "minus what packing saves the raw SDK (the raw SDK's set and publish per change, minus its sets "
                f"with packed topic messages of ≤ {self.cpu.topic_max_bytes:,} B)."
            )
        if packed is not None:
            lines += [
                "",
                f"- CPU per change, {self.packed_label()}: {packed.ms()}",
                f"- against the default mode: {self.packed_ratio('handler').ratio()} "  # type: ignore[union-attr]
                f"(target ≤ {PACKED_VS_DEFAULT_TARGET})",
                f"- against the raw SDK, a set and a publish per change: {self.packed_ratio('raw').ratio()} "  # type: ignore[union-attr]
                f"(target ≤ {PACKED_VS_RAW_TARGET})",
            ]
        floor, ratio, work = self.cpu_ms("floor packed"), self.floor_ratio(), self.handler_work_ms()
        if floor and ratio and work:
            lines += [
                f"- the packed mode's calls alone (raw SDK set up as the handler: stub reuse, no SDK retry strategy; "
                f"sets, then the packs): {floor.ms()}, {ratio.ratio()} of the raw SDK: the least this SDK allows, "
                "one cache set per key",
                f"- the handler's own work on top (reading and checking records, the plan, the change messages, "
                f"packing, outcomes): {work.ms()}",
            ]
        if self.operations is not None:
            lines += [
                "",
                "Topic operations, counted at an in-process local server with subscribers attached: the Publish "
                "calls it received plus the messages delivered to the subscribers (each delivery is one more "
                "operation); every subscriber decoded every change (`change_feed`).",
                "",
            ]
            rows = [
                (
                    count.label,
                    str(count.subscribers),
                    f"{count.changes:,}",
                    f"{count.publishes:,}",
                    f"{count.deliveries:,}",
                    f"{count.changes_per_message:.1f}",
                    f"{count.per_change:.3f}",
                )
                for count in self.operations.counts
            ]
            lines += table(
                (
                    "Run",
                    "Subscribers",
                    "Changes",
                    "Publishes",
                    "Deliveries",
                    "Changes per message",
                    "Operations/change",
                ),
                rows,
            )
            if not self.operations.handler_packs:
                lines += ["", "With `TOPIC_PACKING=on` the handler still published one message per change."]
        return [*lines, ""]

    def _capacity_section(self) -> list[str]:
        pricing, pipes = LambdaPricing(), PipesPricing().per_million_changes
        modes = [("default mode", self.cpu_ms("handler")), (self.packed_label(), self.packed_ms())]
        modes.append(("raw SDK, a set and a publish per change", self.cpu_ms("raw")))
        lines = [
            "## Shard headroom and cost by memory size",
            "",
            f"Lambda gives one vCPU at {pricing.full_vcpu_mb:,} MB and a share in proportion below it; the handler is "
            "CPU-bound, so one function sustains (share / CPU seconds per change) changes per second, against a "
            f"full-rate shard of {FULL_RATE_SHARD:,}/s (ParallelizationFactor 1), and is billed CPU time / share of "
            f"duration at its memory, in batches of {self.batch_size} (the template's BatchSize; "
            f"${pricing.per_million_requests:.2f} per million requests), arm64 ${pricing.per_gb_second} per GB-s; "
            f"EventBridge Pipes: ${pipes:.2f} per million changes. GB-seconds per change are the same at every "
            f"memory up to {pricing.full_vcpu_mb:,} MB.",
            "",
        ]
        rows = []
        for label, spread in modes:
            if spread is None:
                continue
            for memory in self.memory_sizes:
                at = capacity(spread.median / 1000, memory, self.batch_size, pricing)
                rows.append(
                    (
                        label,
                        f"{spread.median:.3f}",
                        f"{memory:,} MB",
                        f"{at.vcpu_share:.0%}",
                        f"{at.changes_per_second:,.0f}/s",
                        f"{at.headroom:.2f}x",
                        str(at.parallelization_to_keep_up or "> 10"),
                        f"${at.cost.total:.5f}",
                        f"{pipes / at.cost.total:,.0f}x",
                        at.cost.arithmetic(),
                    )
                )
        headers = ("Mode", "CPU ms/change", "Memory", "vCPU", "Changes/s", "Headroom", "Parallelization to keep up")
        lines += table((*headers, "Per million changes", "Below Pipes", "Arithmetic"), rows)
        for label, spread in modes[:2]:
            if spread is not None:
                needed = memory_to_keep_up(spread.median / 1000, pricing)
                where = f"{needed:,} MB" if needed else f"more than {pricing.full_vcpu_mb:,} MB (one vCPU)"
                lines.append(f"\n- {label}: one function keeps up with a full-rate shard from {where}.")
        return [*lines, ""]
