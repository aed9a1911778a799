"""The benchmark machinery: workloads the real planner accepts, the cost arithmetic, the verdicts, and a quick run.

No timing is asserted anywhere: the figures depend on the machine. The quick run checks the whole pipeline
(server process, cold-start and memory children, handler and raw SDK rounds) writes a well-formed results file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.capacity import capacity, memory_to_keep_up
from benchmarks.clocks import Reading, read_clocks
from benchmarks.cold_start import ColdStartFigures, ImportEntry, Probe, ProbePair
from benchmarks.cost import LambdaPricing, PipesPricing, cpu_share_seconds, lambda_cost
from benchmarks.cpu_study import CpuFigures, VariantFigures
from benchmarks.memory import MemoryFigures
from benchmarks.report import SECTIONS, render_markdown, render_text, summary_rows
from benchmarks.report_cpu import CpuReport
from benchmarks.suite import BenchmarkOptions, BenchmarkResults, MachineInfo
from benchmarks.throughput import HotKeyFigures, Run, ThroughputFigures
from benchmarks.topic_operations import DEFAULT, HANDLER_PACKED, RAW_PACKED, TopicOperationCount, TopicOperations
from benchmarks.workload import TYPICAL_ITEMS, BatchShape, stream_batch, stream_batch_json
from stream_processor.config import load_settings
from stream_processor.planner import ChangeRules, plan_batch, read_batch

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- workloads ---------------------------------------------------------------------------------------------------


def _rules() -> ChangeRules:
    return ChangeRules.from_settings(
        load_settings({"CACHE_NAME": "c", "TOPIC_NAME": "t", "MOMENTO_LOCAL_ENDPOINT": "127.0.0.1:1"})
    )


def test_distinct_key_batch_is_planned_as_one_write_and_one_message_per_record():
    records = stream_batch(BatchShape(50))["Records"]
    plan = plan_batch(read_batch(records, _rules()), _rules(), 1_700_000_000)

    assert not plan.poison
    assert not plan.rejected
    assert len(plan.key_plans) == 50
    assert all(key_plan.write is not None and len(key_plan.changes) == 1 for key_plan in plan.key_plans)


def test_hot_key_batch_cycles_over_its_keys_in_stream_order():
    records = stream_batch(BatchShape(100, keys=10))["Records"]
    plan = plan_batch(read_batch(records, _rules()), _rules(), 1_700_000_000)

    assert len(plan.key_plans) == 10
    assert plan.superseded_writes == 90
    numbers = [int(record["dynamodb"]["SequenceNumber"]) for record in records]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 100


def test_item_sizes_stay_near_the_requested_range():
    records = stream_batch(BatchShape(200, min_item_bytes=300, max_item_bytes=900))["Records"]
    sizes = [len(json.dumps(r["dynamodb"]["NewImage"], separators=(",", ":"))) for r in records]

    assert min(sizes) >= 290
    assert max(sizes) <= 910
    assert max(sizes) - min(sizes) > 300  # spread over the range, not one size


def test_typical_items_give_change_messages_of_about_300_bytes():
    records = stream_batch(BatchShape(200, **TYPICAL_ITEMS))["Records"]
    plan = plan_batch(read_batch(records, _rules()), _rules(), 1_700_000_000)
    sizes = [len(change.message) for key_plan in plan.key_plans for change in key_plan.changes]

    assert min(sizes) >= 300 and max(sizes) <= 380
    assert 300 <= sum(sizes) / len(sizes) <= 340


def test_json_event_is_the_same_batch():
    shape = BatchShape(30, keys=7, seed=3)

    assert json.loads(stream_batch_json(shape)) == stream_batch(shape)


# --- cost ----------------------------------------------------------------------------------------------------------


def test_pipes_cost_is_two_pipe_requests_and_two_api_destination_invocations_per_change():
    pipes = PipesPricing()

    assert pipes.per_million_changes == pytest.approx(1.20)
    assert "$1.20 per million changes" in pipes.arithmetic()


def test_lambda_cost_bills_rounded_milliseconds_of_memory_plus_requests():
    cost = lambda_cost(batch_size=100, seconds_per_batch=0.0491, memory_mb=512)

    assert cost.invocations == 10_000
    assert cost.billed_ms == 50
    assert cost.gb_seconds == pytest.approx(250.0)
    assert cost.compute == pytest.approx(250.0 * LambdaPricing().per_gb_second)
    assert cost.requests == pytest.approx(0.002)
    assert cost.total == pytest.approx(cost.compute + 0.002)
    assert "10,000 invocations x 50 ms x 512/1024 GB" in cost.arithmetic()


def test_cpu_share_stretches_cpu_bound_work_and_never_shortens_the_measured_time():
    assert cpu_share_seconds(wall_seconds=0.1, cpu_seconds=0.1, memory_mb=1769) == pytest.approx(0.1)
    assert cpu_share_seconds(wall_seconds=0.1, cpu_seconds=0.1, memory_mb=512) == pytest.approx(0.1 * 1769 / 512)
    assert cpu_share_seconds(wall_seconds=0.5, cpu_seconds=0.01, memory_mb=512) == pytest.approx(0.5)


# --- capacity: shard headroom and cost by memory size ----------------------------------------------------------


def test_one_function_sustains_its_vcpu_share_divided_by_the_cpu_per_change():
    at_512 = capacity(0.0005, 512, 100)
    assert at_512.vcpu_share == pytest.approx(512 / 1769)
    assert at_512.changes_per_second == pytest.approx(512 / 1769 / 0.0005)  # about 579/s
    assert at_512.headroom == pytest.approx(at_512.changes_per_second / 1000)
    assert at_512.parallelization_to_keep_up == 2
    assert capacity(0.0005, 1769, 100).changes_per_second == pytest.approx(2000)
    assert capacity(0.0005, 4096, 100).vcpu_share == 1.0  # one Python thread gains nothing above one vCPU
    assert capacity(0.02, 512, 100).parallelization_to_keep_up is None  # more than 10 would be needed


def test_the_memory_that_keeps_up_with_a_full_rate_shard():
    assert memory_to_keep_up(0.0005) == 885  # 1,000 changes/s x 0.5 ms = half a vCPU
    assert memory_to_keep_up(0.00005) == 128  # Lambda's smallest memory
    assert memory_to_keep_up(0.0011) is None  # more than a whole vCPU


def test_cost_bills_cpu_time_at_the_share_so_it_is_flat_up_to_a_whole_vcpu():
    costs = {memory: capacity(0.0003, memory, 100).cost for memory in (512, 1024, 1769)}
    # 100 changes x 0.3 ms = 30 ms of CPU per batch; at 512 MB that is 30 / (512/1769) = 103.65 -> 104 ms billed
    assert costs[512].billed_ms == 104
    assert costs[1024].billed_ms == 52
    assert costs[1769].billed_ms == 30
    assert costs[512].requests == pytest.approx(0.002)  # 10,000 batches of 100
    assert costs[512].compute == pytest.approx(10_000 * 0.104 * 0.5 * LambdaPricing().per_gb_second)
    assert costs[1024].total == pytest.approx(costs[512].total, rel=0.02)
    assert costs[1769].total == pytest.approx(costs[512].total, rel=0.02)


# --- clocks ------------------------------------------------------------------------------------------------------


def test_a_usage_is_the_difference_of_two_readings():
    usage = Reading(10.0, 2.0, 1.5, 7.0).until(Reading(10.5, 2.3, 1.6, 7.2))
    assert usage.seconds == pytest.approx(0.5)
    assert usage.cpu_seconds == pytest.approx(0.3)
    assert usage.main_thread_cpu_seconds == pytest.approx(0.1)
    assert usage.server_cpu_seconds == pytest.approx(0.2)
    assert Reading(0, 0, 0, None).until(Reading(1, 1, 1, 5.0)).server_cpu_seconds is None


def test_the_collector_clock_counts_the_cpu_of_collections():
    import gc

    before = read_clocks()
    for _ in range(20_000):  # cycles only the collector frees
        node: list[object] = []
        node.append(node)
    gc.collect()
    usage = before.until(read_clocks())

    assert 0 < usage.collector_cpu_seconds <= usage.cpu_seconds


def test_another_process_cpu_is_read_from_proc_where_there_is_one():
    reading = read_clocks(os.getpid())
    if not Path("/proc/self/stat").exists():
        assert reading.server_cpu is None
        return
    assert reading.server_cpu is not None
    assert reading.server_cpu <= reading.process_cpu + 0.05  # this process's own CPU, read from outside
    assert read_clocks(2**22 + 1).server_cpu is None  # no such process


# --- verdicts ------------------------------------------------------------------------------------------------------


#: CPU ms per change of each variant in three rounds (the second round uniformly 10% slower).
CPU_MS = {
    "handler": 0.30,
    "raw": 0.34,
    "raw packed": 0.20,
    "raw sets": 0.19,
    "raw publishes": 0.15,
    "handler no stub reuse": 0.34,
    "raw sets stub reuse": 0.155,
    "handler 1 in flight": 0.70,
    "raw 1 in flight": 0.72,
}


def _cpu_figures(cpu_ms: dict[str, float] | None = None) -> CpuFigures:
    figures = CpuFigures(changes=1000, message_bytes=315.0, rounds=3, max_in_flight=64, topic_max_bytes=4096)
    for name, ms in (cpu_ms or CPU_MS).items():
        runs = [
            Run(1000, ms * factor * 2, ms * factor, 1000, ms * factor * 0.7, ms * factor, ms * factor * 0.05)
            for factor in (1.0, 1.1, 1.0)
        ]
        group = "main" if name in ("handler", "raw", "raw packed", "handler packed") else "other"
        figures.variants[name] = VariantFigures(name, f"the {name} variant", group, runs)
    return figures


def _operations(packed_publishes: int = 77, handler_packs: bool = False) -> TopicOperations:
    counts = [TopicOperationCount(DEFAULT, 1000, 2, 1000, 2000, 1000)]
    counts.append(TopicOperationCount(RAW_PACKED, 1000, 2, packed_publishes, 2 * packed_publishes, 1000))
    if handler_packs:
        counts.append(TopicOperationCount(HANDLER_PACKED, 1000, 2, packed_publishes, 2 * packed_publishes, 1000))
    return TopicOperations(counts, handler_packs)


def _results(*, hot_writes: int = 10, handler_seconds_at_1000: float = 0.5, peak_mb: float = 120.0):
    def figures(size: int, handler: float, raw: float) -> ThroughputFigures:
        runs = range(3)
        return ThroughputFigures(
            size,
            handler=[Run(size, handler, handler * 0.9) for _ in runs],
            raw=[Run(size, raw, raw * 0.9) for _ in runs],
        )

    probe = Probe(0.2, 0.2, 0.15, 0.15, {})
    momento_probe = Probe(0.18, 0.18, 0.13, 0.13, {})
    cold = ColdStartFigures(
        compiled=ProbePair([probe] * 3, [momento_probe] * 3),
        uncompiled=None,
        imports=[ImportEntry(100, 900, 0, "stream_processor.app"), ImportEntry(800, 800, 1, "momento")],
        boto3_imported=False,
        botocore_client_imported=False,
    )
    hot = HotKeyFigures(1000, 10, hot=[Run(1000, 0.25, 0.2, hot_writes)] * 3, distinct=[Run(1000, 0.5, 0.4, 1000)] * 3)
    return BenchmarkResults(
        options=BenchmarkOptions(rounds=3),
        machine=MachineInfo(2, "test CPU", "3.11", "Linux", "2026-01-01 00:00 UTC", (0.1, 0.1, 0.1)),
        throughput=[
            figures(100, 0.06, 0.055),
            figures(1000, handler_seconds_at_1000, 0.5),
            figures(10000, 5.2, 5.0),
        ],
        hot_keys=hot,
        cold_start=cold,
        memory=MemoryFigures(10000, 1024, 54.0, 100.0, peak_mb, 14_000_000),
        cpu=_cpu_figures(),
        topic_operations=_operations(),
    )


def _result(results: BenchmarkResults, figure_start: str) -> str:
    return next(row.result for row in summary_rows(results) if row.figure.startswith(figure_start))


def test_report_has_every_section_and_a_verdict_per_target():
    results = _results()
    markdown = render_markdown(results)

    for heading in SECTIONS:
        assert heading in markdown
    assert _result(results, "Throughput, 1,000") == "PASS"
    assert _result(results, "Hot keys: cache writes") == "PASS"
    assert _result(results, "Cold start: fresh interpreter") == "PASS"
    assert _result(results, "Peak RSS") == "PASS"
    assert _result(results, "boto3") == "PASS"
    assert _result(results, "Scale") == "PASS"
    assert "2 pipe requests x $0.40/M + 2 API destination invocations x $0.20/M = $1.20" in markdown
    assert "Figure" in render_text(results).splitlines()[0]


def test_misses_are_reported_with_their_reason():
    results = _results(hot_writes=11, handler_seconds_at_1000=0.8, peak_mb=170.0)
    markdown = render_markdown(results)

    assert _result(results, "Throughput, 1,000") == "MISS"
    assert _result(results, "Hot keys: cache writes") == "MISS"
    assert _result(results, "Peak RSS") == "MISS"
    assert "MISS: Hot keys: cache writes" in markdown
    assert "MISS: Peak RSS" in markdown


def test_the_sdk_stub_cost_is_noted_only_when_the_sdk_rebuilds_stubs():
    results = _results()
    assert "gRPC stubs" not in render_markdown(results)

    results.stub_build_us = 0.0  # an SDK version that keeps its stubs
    assert "gRPC stubs" not in render_markdown(results)

    results.stub_build_us = 50.0
    assert "50 µs of CPU per cache call here, about 11% of the raw SDK's CPU per change" in render_markdown(results)


def _cpu_report(cpu: CpuFigures | None = None, operations: TopicOperations | None = None) -> CpuReport:
    return CpuReport(
        cpu or _cpu_figures(),
        operations or _operations(),
        memory_sizes=(512, 1024, 1769),
        default_memory_mb=512,
        batch_size=100,
    )


def _cpu_row(report: CpuReport, figure_start: str):
    return next(row for row in report.summary_rows() if row.figure.startswith(figure_start))


def test_the_packed_mode_is_estimated_from_the_raw_sdk_while_the_handler_does_not_pack():
    report = _cpu_report()

    # Per round: handler - (raw - raw packed) = 0.30 - (0.34 - 0.20) = 0.16 ms (x1.1 in the second round).
    assert report.packed_ms().median == pytest.approx(0.16)
    assert report.packed_ratio("handler").median == pytest.approx(0.16 / 0.30)
    assert report.packed_ratio("raw").median == pytest.approx(0.16 / 0.34)
    row = _cpu_row(report, "CPU per change, packed mode (estimated), against the default mode")
    assert (row.measured, row.target, row.result) == ("0.160 ms", "≤ 0.6", "PASS")
    assert _cpu_row(report, "CPU per change, packed mode (estimated), against the raw SDK").result == "PASS"


def test_a_handler_that_packs_is_measured_instead():
    report = _cpu_report(_cpu_figures({**CPU_MS, "handler packed": 0.21}), _operations(handler_packs=True))

    assert report.packed_measured
    row = _cpu_row(report, "CPU per change, packed mode (measured), against the default mode")
    assert row.measured == "0.210 ms"
    assert row.ratio.startswith("0.70")
    assert row.result == "MISS"
    assert "Packing removes nearly every publish (0.150 ms each) but no cache set (0.190 ms each)" in row.why
    assert _cpu_row(report, "Topic operations per change, packed mode, 2 subscribers").measured == "0.23"


def test_the_packed_floor_splits_packed_mode_into_the_sdk_calls_and_the_handlers_own_work():
    cpu = _cpu_figures({**CPU_MS, "handler packed": 0.17, "floor packed": 0.136})
    report = _cpu_report(cpu, _operations(handler_packs=True))

    assert report.floor_ratio().median == pytest.approx(0.136 / 0.34)
    assert report.handler_work_ms().median == pytest.approx(0.034)
    why = _cpu_row(report, "CPU per change, packed mode (measured), against the raw SDK").why
    assert "take 0.136 ms (0.40x the raw SDK); the handler's own work adds 0.034 ms" in why
    assert "the handler's own work on top" in "\n".join(report.sections())


def test_the_collector_threshold_saving_is_reported_against_the_default_threshold():
    cpu = _cpu_figures({**CPU_MS, "handler packed": 0.19, "handler packed default gc": 0.20})
    row = _cpu_row(_cpu_report(cpu, _operations(handler_packs=True)), "Collector threshold")

    assert row.measured == "9.5 µs"  # 5% of each run's CPU was the collector's
    assert row.compared_with == "CPython's default threshold (700): 10.0 µs"
    assert row.ratio == "whole runs: 5% (5% to 5%) less CPU"
    assert row.result == "—"


def test_the_stub_reuse_patch_is_kept_only_when_it_saves_5_percent():
    # On the sets it changes: (0.19 - 0.155) ms per set over the handler's 0.34 ms per change without it.
    kept = _cpu_row(_cpu_report(), "Stub-reuse patch")
    assert kept.measured == "10.3%"
    assert kept.result == "PASS"

    removed = _cpu_row(_cpu_report(_cpu_figures({**CPU_MS, "raw sets stub reuse": 0.18})), "Stub-reuse patch")
    assert removed.measured == "2.9%"
    assert removed.result == "MISS"
    assert "remove momento_clients._reuse_cache_stubs" in removed.why
    assert "whole handler runs with and without it differ by 12% (12% to 12%)" in removed.why


def test_topic_operations_count_publishes_and_deliveries_per_change():
    row = _cpu_row(_cpu_report(), "Topic operations per change, packed mode (raw SDK emulation), 2 subscribers")

    assert row.measured == "0.23"  # (77 publishes + 154 deliveries) / 1,000 changes
    assert row.compared_with == "default mode 3.00"
    assert (row.target, row.result) == ("—", "—")  # the target is stated for one subscriber
    assert "about 13.0 changes" in row.why
    one = _operations(packed_publishes=77)
    one.counts = [
        TopicOperationCount(RAW_PACKED, 1000, 1, 77, 77, 1000),
        TopicOperationCount(DEFAULT, 1000, 1, 1000, 1000, 1000),
    ]
    assert _cpu_row(_cpu_report(operations=one), "Topic operations per change").result == "PASS"  # 0.154


def test_headroom_and_cost_rows_follow_the_cpu_per_change():
    report = _cpu_report()

    headroom = _cpu_row(report, "Shard headroom, packed mode (estimated), 512 MB")
    assert headroom.measured == f"{512 / 1769 / 0.00016:,.0f} changes/s"
    assert headroom.result == "PASS"
    default = _cpu_row(report, "Shard headroom, default mode, 512 MB")
    assert "Keeps up at 531 MB, or ParallelizationFactor 2 at 512 MB" in default.why
    cost = _cpu_row(report, "Cost per million changes, packed mode (estimated)")
    # 100 x 0.16 ms = 16 ms of CPU per batch, / (512/1769) -> 56 ms billed; 10,000 batches at 0.5 GB, + $0.002
    expected = 10_000 * 0.056 * 0.5 * LambdaPricing().per_gb_second + 0.002
    assert cost.measured == f"${expected:.5f}"
    assert cost.result == "PASS"


def test_the_method_section_shows_every_way_of_measuring():
    markdown = "\n".join(_cpu_report().sections())

    assert (
        "| this process, every thread, 64 in flight (this benchmark; what Lambda bills) | 0.300 | 0.340 |" in markdown
    )
    assert "| the event loop's thread alone (gRPC's threads left out) | 0.210 | 0.238 |" in markdown
    assert "| this process plus the local server process (both sides of every call) | 0.600 | 0.680 |" in markdown
    assert "| this process, every thread, one request in flight | 0.700 | 0.720 |" in markdown
    assert "The handler does not pack yet" in markdown


def test_superlinear_growth_is_flagged():
    results = _results()
    slow = results.throughput[2]
    results.throughput[2] = ThroughputFigures(
        slow.size, handler=[Run(10000, 20.0, 18.0)] * 3, raw=[Run(10000, 5.0, 4.5)] * 3
    )

    assert _result(results, "Scale") == "MISS"
    assert "FASTER THAN LINEAR" in render_markdown(results)


# --- the whole run, at tiny sizes ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_writes_a_well_formed_results_file(tmp_path):
    output = tmp_path / "results.md"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "functions"), str(REPO_ROOT)]))

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text(encoding="utf-8")
    positions = [text.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)
    summary = text[text.index("## Summary") : text.index("## Throughput")]
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line][1:]
    figures = [row.split(" | ")[0].lstrip("| ") for row in rows]
    expected_figures = (
        "Throughput, 20 records",
        "Hot keys: cache writes",
        "Cold start",
        "Peak RSS",
        "Scale",
        "CPU per change, default mode",
        "Stub-reuse patch",
        "CPU per change, packed mode",
        "Topic operations per change",
        "Shard headroom",
        "Cost per million changes, default mode",
        "Cost per million changes, packed mode",
    )
    for expected in expected_figures:
        assert any(figure.startswith(expected) for figure in figures), expected
    assert all(row.rstrip(" |").rsplit(" | ", 1)[1] in {"PASS", "MISS", "—"} for row in rows)
    assert "Hot keys: cache writes (100 changes over 10 keys) | 10 |" in summary  # one write per key
    assert "$1.20 per million changes" in text
    assert "| raw SDK: a set and a publish per change | main |" in text
    assert "| this process, every thread, one request in flight |" in text
    assert "Figure" in result.stdout and str(output) in result.stdout


# --- the raw-SDK baseline, through the real SDK --------------------------------------------------------------------


@pytest.mark.parametrize("emulation", ["sets_and_packs", "sets_then_packs"])
def test_the_packed_emulation_sets_every_key_and_publishes_every_change_in_key_order(momento_server, emulation):
    import asyncio

    from momento import CacheClientAsync, Configurations, TopicClientAsync, TopicConfigurations

    from benchmarks import raw_sdk
    from benchmarks.raw_sdk import KeyCalls, RawClients
    from stream_processor.change_feed import decode_topic_message
    from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME

    def message(key: str, number: int) -> bytes:
        return json.dumps({"eventName": "MODIFY", "table": "t", "key": key, "n": number, "pad": "x" * 200}).encode()

    calls = [
        KeyCalls(f"k{key}", b"value", timedelta(minutes=5), tuple(message(f"k{key}", n) for n in range(key * 3)))
        for key in range(1, 9)
    ]

    async def run() -> int:
        credentials = momento_server.credential_provider()
        cache = CacheClientAsync(Configurations.Lambda.latest(), credentials, timedelta(minutes=5))
        topics = TopicClientAsync(TopicConfigurations.Default.latest(), credentials)
        clients = RawClients(cache, topics, TEST_CACHE_NAME, TEST_TOPIC_NAME)
        try:
            return await getattr(raw_sdk, emulation)(calls, clients, workers=4, max_bytes=1024)
        finally:
            await clients.close()

    assert asyncio.run(run()) == 0
    published = momento_server.published(TEST_CACHE_NAME, TEST_TOPIC_NAME)
    changes = [change for text in published for change in decode_topic_message(text)]
    assert momento_server.cache_items(TEST_CACHE_NAME) == {f"k{key}": b"value" for key in range(1, 9)}
    assert len(published) < len(changes) == sum(key * 3 for key in range(1, 9))
    assert all(len(text) <= 1024 for text in published)
    for key in range(1, 9):
        assert [change["n"] for change in changes if change["key"] == f"k{key}"] == list(range(key * 3))
