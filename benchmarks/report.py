"""The results of a run as Markdown (``benchmarks/results.md``) and as a plain summary table for the terminal.

Every target is checked here, from the figures: one summary row per figure with what it is compared with, the
ratio, the target and PASS / MISS, then a section per measurement, the cost arithmetic and notes on any miss.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.cost import LambdaCost, LambdaPricing, PipesPricing, cpu_share_seconds, lambda_cost
from benchmarks.markdown import Row
from benchmarks.markdown import table as _table
from benchmarks.report_cpu import CpuReport
from benchmarks.suite import BenchmarkResults
from benchmarks.throughput import ThroughputFigures, median

__all__ = ["SECTIONS", "Row", "render_markdown", "render_text", "summary_rows"]

#: Section headings of the results file, in order (the smoke test checks they are all there).
SECTIONS = (
    "## Machine",
    "## Summary",
    "## Throughput",
    "## Hot keys",
    "## Scale",
    "## CPU per change",
    "## How CPU per change is measured",
    "## Packed topic messages",
    "## Shard headroom and cost by memory size",
    "## Cold start",
    "## Memory",
    "## Cost per million changes",
    "## Notes",
)

THROUGHPUT_TARGET_SIZE = 1_000
THROUGHPUT_TARGET = 0.9
COLD_START_TARGET = 1.3
PEAK_RSS_TARGET_MB = 160.0
COST_TARGET = 100.0
#: A batch 10x larger may cost at most this much more time per change before it counts as superlinear growth
#: (generous: the machine is shared and the figures are medians of a few rounds).
SCALE_TOLERANCE = 1.5


def _verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("PASS" if passed else "MISS")


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.3f} ms"


def _usd(value: float) -> str:
    return f"${value:.5f}" if value < 0.1 else f"${value:.2f}"


@dataclass(frozen=True)
class _CostCase:
    label: str
    cost: LambdaCost

    @property
    def ratio(self) -> float:
        return PipesPricing().per_million_changes / self.cost.total


def _cost_cases(results: BenchmarkResults, figures: ThroughputFigures) -> tuple[_CostCase, _CostCase]:
    """The handler's work at Lambda's CPU share, and the raw SDK calls alone at that share.

    Lambda bills the duration a CPU-bound function needs at its share of a vCPU, not the wall time measured here
    on a whole core (which would understate the bill by the share).
    """
    memory = results.options.memory_mb
    size = figures.size
    scaled = cpu_share_seconds(figures.handler_seconds, figures.handler_cpu_seconds, memory)
    raw_scaled = cpu_share_seconds(figures.raw_seconds, figures.raw_cpu_seconds, memory)
    return (
        _CostCase("at Lambda's CPU share", lambda_cost(size, scaled, memory)),
        _CostCase("raw SDK calls alone, at the CPU share", lambda_cost(size, raw_scaled, memory)),
    )


@dataclass(frozen=True)
class _ScaleStep:
    """How time per change grew from one batch size to the next (wall and CPU, handler and raw SDK)."""

    smaller: int
    larger: int
    handler: float
    raw: float
    handler_cpu: float
    raw_cpu: float

    @property
    def superlinear(self) -> bool:
        """Beyond the tolerance and beyond the raw SDK's own growth, in wall time or in CPU time."""
        return (self.handler > SCALE_TOLERANCE and self.handler > self.raw * 1.2) or (
            self.handler_cpu > SCALE_TOLERANCE and self.handler_cpu > self.raw_cpu * 1.2
        )

    def describe(self) -> str:
        return (
            f"{self.smaller:,} → {self.larger:,}: wall x{self.handler:.2f} (raw x{self.raw:.2f}), "
            f"CPU x{self.handler_cpu:.2f} (raw x{self.raw_cpu:.2f})"
        )


def _scale_steps(throughput: Sequence[ThroughputFigures]) -> list[_ScaleStep]:
    def growth(small: float, small_size: int, large: float, large_size: int) -> float:
        return (large / large_size) / (small / small_size)

    return [
        _ScaleStep(
            small.size,
            large.size,
            growth(small.handler_seconds, small.size, large.handler_seconds, large.size),
            growth(small.raw_seconds, small.size, large.raw_seconds, large.size),
            growth(small.handler_cpu_seconds, small.size, large.handler_cpu_seconds, large.size),
            growth(small.raw_cpu_seconds, small.size, large.raw_cpu_seconds, large.size),
        )
        for small, large in itertools.pairwise(throughput)
    ]


def summary_rows(results: BenchmarkResults) -> list[Row]:
    rows: list[Row] = []
    for figures in results.throughput:
        targeted = figures.size == THROUGHPUT_TARGET_SIZE
        rows.append(
            Row(
                f"Throughput, {figures.size:,} records",
                _rate(figures.handler_rate),
                f"raw SDK {_rate(figures.raw_rate)} (CPU ratio {figures.cpu_ratio:.2f})",
                f"{figures.ratio:.2f}",
                f"≥ {THROUGHPUT_TARGET}" if targeted else "—",
                _verdict(figures.ratio >= THROUGHPUT_TARGET) if targeted else "—",
                _why_throughput(figures),
            )
        )
    hot = results.hot_keys
    if hot is not None:
        writes = hot.cache_writes
        rows.append(
            Row(
                f"Hot keys: cache writes ({hot.changes:,} changes over {hot.keys} keys)",
                ", ".join(str(count) for count in sorted(set(writes))) or "none",
                f"{hot.keys} keys",
                "—",
                f"exactly {hot.keys}",
                _verdict(bool(writes) and all(count == hot.keys for count in writes)),
                f"Cache writes per round: {writes}.",
            )
        )
        hot_rate = hot.changes / median([run.seconds for run in hot.hot])
        distinct_rate = hot.changes / median([run.seconds for run in hot.distinct])
        rows.append(
            Row(
                "Hot keys: throughput",
                _rate(hot_rate),
                f"distinct keys {_rate(distinct_rate)}",
                f"{hot.gain:.2f}x gain",
            )
        )
    cold = results.cold_start
    if cold is not None:
        compiled = cold.compiled
        rows.append(
            Row(
                "Cold start: fresh interpreter, import + clients (wall)",
                _ms(compiled.wall("handler")),
                f"`import momento` {_ms(compiled.wall('momento'))}",
                f"{compiled.wall_ratio:.2f}",
                f"≤ {COLD_START_TARGET}",
                _verdict(compiled.wall_ratio <= COLD_START_TARGET),
                _why_cold_start(results),
            )
        )
        rows.append(
            Row(
                "Cold start: CPU time of the fresh interpreter (user + system)",
                _ms(compiled.cpu("handler")),
                f"`import momento` {_ms(compiled.cpu('momento'))}",
                f"{compiled.cpu_ratio:.2f}",
            )
        )
        rows.append(
            Row(
                "Cold start: import + clients only (in the process)",
                _ms(compiled.ready("handler")),
                f"`import momento` {_ms(compiled.ready('momento'))}",
                f"{compiled.import_ratio:.2f}",
            )
        )
        if cold.uncompiled is not None:
            rows.append(
                Row(
                    "Cold start without bytecode (a build without Python 3.13) (wall)",
                    _ms(cold.uncompiled.wall("handler")),
                    f"`import momento` {_ms(cold.uncompiled.wall('momento'))}",
                    f"{cold.uncompiled.wall_ratio:.2f}",
                )
            )
        rows.append(
            Row(
                "boto3 imported at start (DLQ_URL set, no secret)",
                "yes" if cold.boto3_imported else "no",
                target="not imported",
                result=_verdict(not cold.boto3_imported),
            )
        )
    memory = results.memory
    if memory is not None:
        rows.append(
            Row(
                f"Peak RSS, {memory.records:,} records of ~{memory.item_bytes:,} B",
                f"{memory.peak_mb:.0f} MB",
                f"after import {memory.after_import_mb:.0f} MB",
                target=f"≤ {PEAK_RSS_TARGET_MB:.0f} MB",
                result=_verdict(memory.peak_mb <= PEAK_RSS_TARGET_MB),
                why=f"After import {memory.after_import_mb:.0f} MB, with the event {memory.with_event_mb:.0f} MB, "
                f"processing added {memory.peak_mb - memory.with_event_mb:.0f} MB.",
            )
        )
    cpu = _cpu_report(results)
    if results.throughput:
        if cpu is None:
            rows += _throughput_cost_rows(results)
        steps = _scale_steps(results.throughput)
        if steps:
            first, last = results.throughput[0], results.throughput[-1]
            rows.append(
                Row(
                    f"Scale: time per change, {first.size:,} → {last.size:,} records",
                    f"{_ms(first.handler_seconds / first.size)} → {_ms(last.handler_seconds / last.size)}",
                    f"raw SDK {_ms(first.raw_seconds / first.size)} → {_ms(last.raw_seconds / last.size)}",
                    " / ".join(f"{step.handler:.2f}" for step in steps),
                    f"≤ {SCALE_TOLERANCE} per 10x records",
                    _verdict(not any(step.superlinear for step in steps)),
                    "Time per change grew faster than linear: "
                    + "; ".join(step.describe() for step in steps if step.superlinear)
                    + ".",
                )
            )
    if cpu is not None:
        rows += cpu.summary_rows()
    return rows


def _cpu_report(results: BenchmarkResults) -> CpuReport | None:
    if results.cpu is None:
        return None
    options = results.options
    return CpuReport(
        results.cpu,
        results.topic_operations,
        memory_sizes=options.memory_sizes,
        default_memory_mb=options.memory_mb,
        batch_size=options.batch_size,
        stub_build_us=results.stub_build_us,
    )


def _throughput_cost_rows(results: BenchmarkResults) -> list[Row]:
    """Cost from the throughput runs (smallest batch) at Lambda's CPU share, when no CPU study was run."""
    smallest = results.throughput[0]
    scaled, raw = _cost_cases(results, smallest)
    pipes = PipesPricing().per_million_changes
    return [
        Row(
            f"Cost per million changes, {scaled.label} ({results.options.memory_mb} MB, batch {smallest.size:,})",
            _usd(scaled.cost.total),
            f"Pipes {_usd(pipes)}",
            f"{scaled.ratio:,.0f}x lower",
            f"≥ {COST_TARGET:.0f}x lower",
            _verdict(scaled.ratio >= COST_TARGET),
            f"The raw SDK calls alone cost {_usd(raw.cost.total)} per million changes at this CPU share "
            f"({raw.ratio:,.0f}x below Pipes).",
        )
    ]


def render_markdown(results: BenchmarkResults) -> str:
    options, machine = results.options, results.machine
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks`); every figure below comes from the same run. Medians over "
        f"{options.rounds} interleaved rounds unless stated; ratios compare figures taken side by side.",
        "",
    ]
    if options.quick:
        lines += ["**Quick run (`--quick`): small sizes, one round. The figures check the machinery only.**", ""]
    load = ", ".join(f"{value:.2f}" for value in machine.load_average) if machine.load_average else "unknown"
    end_load = ", ".join(f"{value:.2f}" for value in results.end_load_average) if results.end_load_average else "?"
    lines += [
        "## Machine",
        "",
        f"- CPUs: {machine.cpu_count} ({machine.cpu_model})",
        f"- Python {machine.python} on {machine.platform}",
        f"- Date: {machine.date}; load average (1, 5, 15 min) at start {load}, at the end {end_load}; whole run "
        f"{results.elapsed_seconds:.0f} s",
        f"- Handler settings: MAX_IN_FLIGHT={options.max_in_flight}, Powertools logs at INFO and EMF metrics on "
        "(stdout sent to the null device), the local Momento-compatible server in a separate process",
        "",
        "## Summary",
        "",
    ]
    rows = summary_rows(results)
    lines += _table(
        ("Figure", "Measured", "Compared with", "Ratio", "Target", "Result"),
        [(r.figure, r.measured, r.compared_with, r.ratio, r.target, r.result) for r in rows],
    )
    lines += ["", *_throughput_section(results), *_hot_section(results), *_scale_section(results)]
    cpu = _cpu_report(results)
    lines += cpu.sections() if cpu is not None else []
    lines += [*_cold_section(results), *_memory_section(results), *_cost_section(results)]
    lines += _notes_section(results, rows)
    return "\n".join(lines) + "\n"


def _throughput_section(results: BenchmarkResults) -> list[str]:
    lines = [
        "## Throughput",
        "",
        "Distinct keys, INSERT records with change messages of about 300 bytes; each change is one `set` and one "
        "`publish`. The raw "
        "SDK issues the handler's own calls (keys, values, TTLs, messages from its plan) through `CacheClientAsync` "
        f"(`Configurations.Lambda`) and `TopicClientAsync` with {results.options.max_in_flight} in flight on the "
        "handler's event loop. Handler/raw: median over rounds of the paired throughput ratio. CPU ratio: median "
        "over rounds of raw CPU time / handler CPU time for the same changes (process CPU time, every thread, "
        "gRPC's included), which other load on the machine disturbs much less than wall time.",
        "",
    ]
    rows = []
    for figures in results.throughput:
        ratios = figures.ratios
        rows.append(
            (
                f"{figures.size:,}",
                _rate(figures.handler_rate),
                _rate(figures.raw_rate),
                f"{figures.ratio:.2f}",
                f"{min(ratios):.2f} to {max(ratios):.2f}",
                f"{figures.cpu_ratio:.2f}",
                f"{figures.handler_cpu_seconds / figures.size * 1000:.3f}",
                f"{figures.raw_cpu_seconds / figures.size * 1000:.3f}",
            )
        )
    lines += _table(
        (
            "Records",
            "Handler",
            "Raw SDK",
            "Handler/raw",
            "Range",
            "CPU ratio",
            "Handler CPU ms/change",
            "Raw CPU ms/change",
        ),
        rows,
    )
    return [*lines, ""]


def _hot_section(results: BenchmarkResults) -> list[str]:
    hot = results.hot_keys
    if hot is None:
        return []
    lines = [
        "## Hot keys",
        "",
        f"{hot.changes:,} changes cycling over {hot.keys} keys, next to {hot.changes:,} changes on distinct keys "
        "(back to back in each round). Cache writes are the handler's own count (`sets` + `deletes` of its "
        "summary); every change is still published.",
        "",
    ]
    rows = [
        (
            str(number + 1),
            str(run.cache_writes),
            _ms(run.seconds),
            _ms(distinct.seconds),
            f"{distinct.seconds / run.seconds:.2f}",
        )
        for number, (run, distinct) in enumerate(zip(hot.hot, hot.distinct, strict=False))
    ]
    lines += _table(("Round", "Cache writes", "Hot-key batch", "Distinct-key batch", "Gain"), rows)
    return [*lines, ""]


def _scale_section(results: BenchmarkResults) -> list[str]:
    lines = [
        "## Scale",
        "",
        "Time per change (median batch time / records). Growth: time (wall) and CPU time per change relative to "
        f"the previous size; either above {SCALE_TOLERANCE} for 10x the records (and above the raw SDK's own "
        "growth) is flagged as faster than linear.",
        "",
    ]
    steps = {step.larger: step for step in _scale_steps(results.throughput)}
    rows = []
    for figures in results.throughput:
        step = steps.get(figures.size)
        rows.append(
            (
                f"{figures.size:,}",
                _ms(figures.handler_seconds / figures.size),
                _ms(figures.raw_seconds / figures.size),
                "—" if step is None else f"{step.handler:.2f}",
                "—" if step is None else f"{step.raw:.2f}",
                "—" if step is None else f"{step.handler_cpu:.2f}",
                "—" if step is None else f"{step.raw_cpu:.2f}",
                "FASTER THAN LINEAR" if step is not None and step.superlinear else "ok",
            )
        )
    headers = ("Records", "Handler per change", "Raw per change", "Handler growth", "Raw growth")
    lines += _table((*headers, "Handler CPU growth", "Raw CPU growth", "Flag"), rows)
    return [*lines, ""]


def _cold_section(results: BenchmarkResults) -> list[str]:
    cold = results.cold_start
    if cold is None:
        return []
    options = results.options
    lines = [
        "## Cold start",
        "",
        f"Fresh interpreters, {options.cold_rounds} of each, alternating: `import stream_processor.app` then "
        "`stream_processor.app.processor()` (settings and both Momento clients, built lazily as on Lambda) next to "
        "`import momento` alone. Wall: the whole process, interpreter start to exit. CPU: the child's user + system "
        "time (less sensitive to other load than wall). In the process: from before the import to clients built.",
        "",
    ]
    rows = []
    pairs = [("with bytecode", cold.compiled)]
    if cold.uncompiled is not None:
        pairs.append(("without bytecode (built without Python 3.13)", cold.uncompiled))
    for label, pair in pairs:
        rows.append(
            (
                label,
                _ms(pair.wall("handler")),
                _ms(pair.wall("momento")),
                f"{pair.wall_ratio:.2f}",
                f"{pair.cpu_ratio:.2f}",
                _ms(pair.ready("handler")),
                _ms(pair.ready("momento")),
                f"{pair.import_ratio:.2f}",
            )
        )
    lines += _table(
        (
            "Bytecode",
            "Handler wall",
            "momento wall",
            "Wall ratio",
            "CPU ratio",
            "Handler in process",
            "momento in process",
            "In-process ratio",
        ),
        rows,
    )
    if cold.uncompiled is not None:
        lines += [
            "",
            f"Without bytecode: {options.uncompiled_rounds} of each, run with `python -S -B` on a copy of the handler "
            "package and the site-packages it imports with every `__pycache__` removed, as the function's artifact "
            "is when built without a Python 3.13 at hand, and as Lambda runs it (`/var/task` is read-only, so the "
            "runtime compiles every module again on every cold start; the standard library ships compiled). "
            "functions/Makefile compiles the artifact for Python 3.13 whenever one is available, which removes "
            "this cost.",
        ]
    lines += [
        "",
        f"boto3 imported at start: **{'yes' if cold.boto3_imported else 'no'}** (probe with DLQ_URL set, no secret); "
        f"`botocore.client` imported: {'yes' if cold.botocore_client_imported else 'no'}.",
        "",
        'Top entries of `python -X importtime -c "import stream_processor.app"` (cumulative, µs):',
        "",
    ]
    lines += _table(
        ("Module", "Cumulative µs", "Self µs"),
        [
            (("· " * entry.depth) + f"`{entry.module}`", f"{entry.cumulative_us:,}", f"{entry.self_us:,}")
            for entry in cold.top_cumulative(15)
        ],
    )
    lines += ["", "Self time by top-level package (what dominates):", ""]
    total = sum(entry.self_us for entry in cold.imports) or 1
    lines += _table(
        ("Package", "Self µs", "Share"),
        [(f"`{name}`", f"{us:,}", f"{us / total:.0%}") for name, us in cold.self_time_by_package(12)],
    )
    return [*lines, ""]


def _memory_section(results: BenchmarkResults) -> list[str]:
    memory = results.memory
    if memory is None:
        return []
    lines = [
        "## Memory",
        "",
        "A fresh process (`python -m benchmarks.memory`): peak RSS (`ru_maxrss`) after import and client set-up, "
        "with the event loaded as the runtime holds it (JSON bytes and the parsed object), and after handling it.",
        "",
    ]
    lines += _table(
        ("Records", "Event JSON", "After import", "With event", "Peak", "Target"),
        [
            (
                f"{memory.records:,} x ~{memory.item_bytes:,} B",
                f"{memory.event_bytes / 1_048_576:.1f} MB",
                f"{memory.after_import_mb:.0f} MB",
                f"{memory.with_event_mb:.0f} MB",
                f"{memory.peak_mb:.0f} MB",
                f"≤ {PEAK_RSS_TARGET_MB:.0f} MB",
            )
        ],
    )
    return [*lines, ""]


def _cost_section(results: BenchmarkResults) -> list[str]:
    if not results.throughput:
        return []
    lambda_prices, pipes = LambdaPricing(), PipesPricing()
    memory = results.options.memory_mb
    lines = [
        "## Cost per million changes",
        "",
        f"Prices (us-east-1 list prices): Lambda arm64 ${lambda_prices.per_gb_second} per GB-s and "
        f"${lambda_prices.per_million_requests:.2f} per million requests; EventBridge Pipes "
        f"${pipes.per_million_pipe_requests:.2f} per million requests (after filtering); API destinations "
        f"${pipes.per_million_api_invocations:.2f} per million invocations. Memory size: {memory} MB (the "
        "template's default). Billed duration per batch rounded up to the millisecond.",
        "",
        f"Pipes integration (three pipes, batch size 1): {pipes.arithmetic()}.",
        "",
        f"Lambda gives one full vCPU at {lambda_prices.full_vcpu_mb:,} MB, so at {memory} MB the function has "
        f"{min(1.0, memory / lambda_prices.full_vcpu_mb):.0%} of a core; the handler is CPU-bound at this "
        "concurrency, so each batch size's first line divides the handler's median CPU time per batch (from the "
        "throughput runs) by that share: the duration Lambda bills. The wall time measured here, on a whole core, "
        "would understate it by that share. The second line does the same for the raw SDK calls alone. The CPU "
        "study's figures at several memory sizes are under Shard headroom and cost by memory size.",
        "",
    ]
    rows = []
    for figures in results.throughput:
        for case in _cost_cases(results, figures):
            rows.append(
                (
                    f"{figures.size:,}",
                    case.label,
                    _usd(case.cost.total),
                    f"{case.ratio:,.0f}x",
                    case.cost.arithmetic(),
                )
            )
    lines += _table(("Batch", "Duration from", "Per million changes", "Lower than Pipes by", "Arithmetic"), rows)
    return [*lines, ""]


def _notes_section(results: BenchmarkResults, rows: Sequence[Row]) -> list[str]:
    lines = ["## Notes", ""]
    misses = [row for row in rows if row.result == "MISS"]
    if not misses:
        lines.append("- Every target is met in this run.")
    for row in misses:
        lines.append(f"- MISS: {row.figure}: {row.measured} against {row.target}. {row.why}")
    loads = [load[0] for load in (results.machine.load_average, results.end_load_average) if load]
    if loads and max(loads) > results.machine.cpu_count:
        lines.append(
            f"- Other load: the 1-minute load average reached {max(loads):.1f} on {results.machine.cpu_count} CPUs "
            "during this run, so wall-clock figures are disturbed (see the ranges); the CPU-time ratios are the "
            "steadier estimate of the same comparisons."
        )
    cold = results.cold_start
    if cold is not None and cold.uncompiled is not None:
        lines.append(
            f"- Bytecode: a cold start without bytecode took {_ms(cold.uncompiled.wall('handler'))} against "
            f"{_ms(cold.compiled.wall('handler'))} with it on this machine. Lambda's code directory is read-only, "
            "so an artifact without bytecode pays that compilation on every cold start; functions/Makefile ships "
            "bytecode compiled by Python 3.13 (the runtime's) whenever the build machine has one."
        )
    lines += [
        "- Method: handler and raw-SDK runs alternate within each round and swap order every round; a warm-up "
        "round (not recorded) opens the connections first, as in a warm container. The handler's summary is "
        "checked after every run (no failures, every change published) so a broken run cannot pass as fast.",
        "- The machine may be shared: absolute figures drift between runs, the ratios much less. The local server "
        "answers from memory on loopback, so network latency (a few ms to Momento in-region) is absent; at this "
        "concurrency it overlaps with CPU work in production too.",
    ]
    lines += _stub_note(results)
    if results.options.profile is not None:
        name = results.options.profile.name
        lines.append(f"- A pyinstrument profile of one batch was written with `--profile` (`{name}`).")
    return [*lines, ""]


def _stub_note(results: BenchmarkResults) -> list[str]:
    stub_us = results.stub_build_us
    if not stub_us:
        return []
    per_change = [f.raw_cpu_seconds / f.size * 1e6 for f in results.throughput if f.size == THROUGHPUT_TARGET_SIZE]
    share = (
        f", about {stub_us / per_change[0]:.0%} of the raw SDK's CPU per change at 1,000 records" if per_change else ""
    )
    return [
        f"- gRPC stubs: the momento SDK builds a new cache-service stub (a handle per RPC) for every call: "
        f"{stub_us:.0f} µs of CPU per cache call here{share}. The raw-SDK runs pay it; the handler's cache client "
        "reuses one stub per channel (`momento_clients._reuse_cache_stubs`), which is why it can beat them."
    ]


def _why_throughput(figures: ThroughputFigures) -> str:
    handler_cpu = figures.handler_cpu_seconds / figures.size * 1000
    raw_cpu = figures.raw_cpu_seconds / figures.size * 1000
    return (
        f"The handler used {handler_cpu:.3f} ms CPU per change against the raw SDK's {raw_cpu:.3f} ms (CPU ratio "
        f"{figures.cpu_ratio:.2f}): its own work (parsing, planning, encoding, logs and metrics) adds "
        f"{handler_cpu / raw_cpu - 1:.0%}; wall-time ratios ranged {min(figures.ratios):.2f} to "
        f"{max(figures.ratios):.2f} over the rounds."
    )


def _why_cold_start(results: BenchmarkResults) -> str:
    cold = results.cold_start
    if cold is None:
        return ""
    packages = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in cold.self_time_by_package(6))
    return (
        f"CPU-time ratio {cold.compiled.cpu_ratio:.2f}, in-process ratio {cold.compiled.import_ratio:.2f}. Import "
        f"self time by package (under -X importtime): {packages}."
    )


def render_text(results: BenchmarkResults) -> str:
    """The summary table as aligned plain text for the terminal."""
    rows = [("Figure", "Measured", "Compared with", "Ratio", "Target", "Result")]
    rows += [(r.figure, r.measured, r.compared_with, r.ratio, r.target, r.result) for r in summary_rows(results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
