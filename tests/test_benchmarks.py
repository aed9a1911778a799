"""The benchmark machinery: workloads the real planner accepts, the cost arithmetic, the verdicts, and a quick run.

No timing is asserted anywhere: the figures depend on the machine. The quick run checks the whole pipeline
(server process, cold-start and memory children, handler and raw SDK rounds) writes a well-formed results file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cold_start import ColdStartFigures, ImportEntry, Probe, ProbePair
from benchmarks.cost import LambdaPricing, PipesPricing, cpu_share_seconds, lambda_cost
from benchmarks.memory import MemoryFigures
from benchmarks.report import SECTIONS, render_markdown, render_text, summary_rows
from benchmarks.suite import BenchmarkOptions, BenchmarkResults, MachineInfo
from benchmarks.throughput import HotKeyFigures, Run, ThroughputFigures
from benchmarks.workload import BatchShape, stream_batch, stream_batch_json
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


# --- verdicts ------------------------------------------------------------------------------------------------------


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


def test_the_sdk_stub_cost_is_noted_only_when_the_client_rebuilds_stubs():
    results = _results()
    assert "gRPC stubs" not in render_markdown(results)

    results.stub_build_us = 120.0
    assert "120 µs of CPU per cache write" in render_markdown(results)

    results.stub_build_us = 0.0
    assert "reuses one stub per channel" in render_markdown(results)


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
    for expected in ("Throughput, 20 records", "Hot keys: cache writes", "Cold start", "Peak RSS", "Cost", "Scale"):
        assert any(figure.startswith(expected) for figure in figures), expected
    assert all(row.rstrip(" |").rsplit(" | ", 1)[1] in {"PASS", "MISS", "—"} for row in rows)
    assert "Hot keys: cache writes (100 changes over 10 keys) | 10 |" in summary  # one write per key
    assert "$1.20 per million changes" in text
    assert "Figure" in result.stdout and str(output) in result.stdout
