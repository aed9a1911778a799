"""`make run`: the whole local pipeline, in-process at small sizes and once through its real entry point.

The in-process runs use the session's local Momento server, so every number the report prints can be checked
against the server's own counters; the reproducibility runs start their own server, seeded from ``--seed``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from momento import TopicClientAsync, TopicConfigurations
from momento.responses import TopicPublish

from local_pipeline import demo
from local_pipeline.comparison import TableState, compare
from local_pipeline.demo import main
from local_pipeline.momento_server import FaultRule, LocalMomentoServer
from local_pipeline.run_result import CACHE_NAME, TOPIC_NAME
from local_pipeline.subscriber import TopicSubscriber

REPO = Path(__file__).resolve().parents[2]
CALLS_LINE = re.compile(r"Momento calls ((?:\w+ \d+(?: · )?)+)")
FAULTS_LINE = re.compile(r"Injected faults ((?:\w+ \d+(?: · )?)+)")


def run_main(args: list[str], server: LocalMomentoServer, capsys: pytest.CaptureFixture[str], log: Path):
    status = main([*args, "--log-file", str(log)], server=server)
    # rich wraps long lines: compare the text with its whitespace collapsed
    return status, " ".join(capsys.readouterr().out.split())


def counts(text: str) -> dict[str, int]:
    return {name: int(count) for name, count in re.findall(r"(\w+) (\d+)", text)}


def number(pattern: str, output: str) -> int:
    match = re.search(pattern, output)
    assert match, f"{pattern!r} not in the report:\n{output}"
    return int(match.group(1))


def check_report_agrees_with_server(output: str, server: LocalMomentoServer) -> None:
    """The report's Momento calls, faults, topic and cache numbers are the server's own, and its counts add up."""
    calls = CALLS_LINE.search(output)
    assert calls, output
    received = {name: n for name, n in server.calls.items() if n and name != "Subscribe"}
    assert counts(calls.group(1)) == received
    assert number(r"\((\d+) subscriptions?\)", output) == server.calls["Subscribe"]
    faults = FAULTS_LINE.search(output)
    expected_faults = {name: n for name, n in server.injected_faults.items() if n}
    assert (counts(faults.group(1)) if faults else {}) == expected_faults
    published = len(server.published(CACHE_NAME, TOPIC_NAME))
    assert number(r"(\d+) messages? accepted on", output) == published
    assert number(r"(\d+) received by the subscriber", output) == published
    if "keys equal" in output:
        assert number(r"(\d+) live items? cached", output) == len(server.cache_items(CACHE_NAME))
    # Every successful call the handler counted is a call the server received and did not fail.
    for name, label in (("Set", "cache sets"), ("Delete", "deletes"), ("Publish", "publishes")):
        assert number(rf"{label} (\d+)", output) == received.get(name, 0) - expected_faults.get(name, 0), name
    # Changes are counted once, deliveries with their re-deliveries: both add up.
    changes = number(r"Stream (\d+) changes:", output)
    processed = number(r"changes: (\d+) processed", output)
    skipped = number(r"(\d+) skipped because", output) if "skipped because" in output else 0
    assert processed + skipped == changes
    delivered = number(r"delivering (\d+) records", output)
    assert delivered == changes + number(r"plus (\d+) re-deliveries", output)
    assert number(r"records (\d+) · cache sets", output) == delivered


def test_a_clean_run_leaves_every_key_equal_and_reports_the_servers_counts(momento_server, capsys, tmp_path):
    status, output = run_main(
        ["--changes", "80", "--keys", "8", "--seed", "3"], momento_server, capsys, tmp_path / "log"
    )

    assert status == 0, output
    assert "All 8 keys equal" in output
    assert "80 changes: 80 processed" in output
    assert "Injected faults none" in output
    check_report_agrees_with_server(output, momento_server)
    # Without faults every change is published exactly once, in one message each.
    messages = [json.loads(m) for m in momento_server.published(CACHE_NAME, TOPIC_NAME)]
    assert len(messages) == 80
    assert len({m["eventID"] for m in messages}) == 80
    # The handler's own counts, read back from its log, are the server's too when nothing fails.
    calls = momento_server.calls
    assert f"cache sets {calls['Set']} · deletes {calls['Delete']} · " in output
    assert "publishes 80 " in output


def test_a_run_with_faults_recovers_and_counts_the_injected_faults(momento_server, capsys, tmp_path):
    status, output = run_main(
        ["--changes", "80", "--keys", "8", "--fault-rate", "0.3", "--batch-size", "20"],
        momento_server,
        capsys,
        tmp_path / "log",
    )

    assert status == 0, output
    assert "All 8 keys equal" in output
    assert sum(momento_server.injected_faults.values()) > 0
    check_report_agrees_with_server(output, momento_server)
    assert number(r"(\d+) of 80 changes at least once", output) == 80


def test_batches_that_run_out_of_retries_go_to_the_dlq_and_the_redrive_repairs_the_cache(
    momento_server, capsys, tmp_path
):
    # A 1 s timeout leaves no time for retries inside the invocation and MaximumRetryAttempts 0 none in the
    # mapping: with half the calls failing, batches are discarded to the DLQ.
    args = ["--changes", "60", "--keys", "6", "--batch-size", "10", "--fault-rate", "0.5", "--max-retries", "0"]
    args += ["--timeout", "1", "--redrive", "--show", "0"]

    status, output = run_main(args, momento_server, capsys, tmp_path / "log")

    assert status == 0, output
    messages = number(r"Dead-letter queue: (\d+) messages", output)
    assert messages > 0
    assert f"messages read {messages} " in output
    assert "queue messages kept 0 " in output
    assert "All 6 keys equal after the redrive" in output
    # The redrive's messages are marked, and every change reached the topic at least once in the end.
    redriven = [m for m in map(json.loads, momento_server.published(CACHE_NAME, TOPIC_NAME)) if m.get("redriven")]
    assert redriven
    assert "60 of 60 changes at least once" in output.split("Redrive")[-1]


def test_without_the_redrive_the_report_says_which_keys_wait_for_it(momento_server, capsys, tmp_path):
    args = ["--changes", "60", "--keys", "6", "--batch-size", "10", "--fault-rate", "0.5", "--max-retries", "0"]
    args += ["--timeout", "1"]

    status, output = run_main(args, momento_server, capsys, tmp_path / "log")

    assert number(r"Dead-letter queue: (\d+) messages", output) > 0
    assert "not covered by the dead-letter queue" not in output
    check_report_agrees_with_server(output, momento_server)
    assert number(r"(\d+) skipped because their batch ran out of retries", output) > 0
    if status == 0:  # later batches happened to rewrite every key the discarded ones touched
        assert "All 6 keys equal" in output
    else:
        assert "Every one of them was changed by records in the dead-letter queue" in output
        assert "--redrive" in output


def test_a_cache_that_differs_from_the_table_fails_the_run_with_a_clear_message(
    momento_server, capsys, tmp_path, monkeypatch
):
    real_handler = demo._container_handler

    def handler_that_ignores_deletes():
        handler = real_handler()

        def invoke(event, context):
            kept = [record for record in event["Records"] if record["eventName"] != "REMOVE"]
            return handler({"Records": kept}, context)

        return invoke

    monkeypatch.setattr(demo, "_container_handler", handler_that_ignores_deletes)

    status, output = run_main(["--changes", "80", "--keys", "8", "--seed", "3"], momento_server, capsys, tmp_path / "l")

    assert status == 1
    differing = number(r"(\d+) of 8 keys differ", output)
    assert differing > 0
    assert "not covered by the dead-letter queue: changes were lost" in output


def test_an_item_past_its_ttl_counts_as_absent_and_must_not_be_cached():
    now = 1_000_000.0
    table = {
        "Oslo": {"Location": "Oslo", "MaxTemp": Decimal(3), "ExpiresAt": Decimal(999_000)},
        "Lima": {"Location": "Lima", "MaxTemp": Decimal(19)},
    }
    lima = b'{"Location":"Lima","MaxTemp":19}'

    fine = compare(["Oslo", "Lima"], table, {"Lima": lima}, now)
    stale = compare(["Oslo", "Lima"], table, {"Lima": lima, "Oslo": b'{"Location":"Oslo","MaxTemp":3}'}, now)

    assert fine.all_equal
    assert fine.count(TableState.EXPIRED) == 1
    assert [state.key for state in stale.differing] == ["Oslo"]


def test_a_subscription_that_does_not_open_in_time_is_tried_again(momento_server):
    momento_server.create_cache("cache")
    momento_server.add_fault(FaultRule(method="Subscribe", code=None, latency_seconds=2.0, times=1))

    with TopicSubscriber(momento_server.credential_provider(), "cache", "topic").start(open_timeout_seconds=0.5) as sub:
        assert momento_server.calls["Subscribe"] == 2
        publish(momento_server, "cache", "topic", "hello")
        assert sub.wait_for(1, timeout_seconds=10)
        assert sub.messages == ["hello"]


def publish(server: LocalMomentoServer, cache: str, topic: str, message: str) -> None:
    async def send() -> None:
        async with TopicClientAsync(TopicConfigurations.Default.latest(), server.credential_provider()) as client:
            assert isinstance(await client.publish(cache, topic, message), TopicPublish.Success)

    asyncio.run(send())


def run_module(args: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "GRPC_VERBOSITY")}
    return subprocess.run(
        [sys.executable, "-m", "local_pipeline", *args, "--log-file", str(log)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_python_m_local_pipeline_runs_the_pipeline(tmp_path):
    completed = run_module(["--changes", "40", "--keys", "5"], tmp_path / "log")

    output = " ".join(completed.stdout.split())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "All 5 keys equal" in output
    assert "40 changes: 40 processed" in output
    assert completed.stderr == ""  # no gRPC core lines, Python warnings or tracebacks
    summaries = [line for line in (tmp_path / "log").read_text().splitlines() if '"batch processed"' in line]
    assert summaries  # the handler's JSON logs went to the log file, not the terminal
    assert '"batch processed"' not in completed.stdout


def test_a_fault_run_with_a_redrive_prints_nothing_but_its_report(tmp_path):
    args = ["--changes", "40", "--keys", "5", "--fault-rate", "0.5", "--max-retries", "0", "--timeout", "1"]

    completed = run_module([*args, "--redrive", "--show", "0"], tmp_path / "log")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "All 5 keys equal after the redrive" in " ".join(completed.stdout.split())
    assert completed.stderr == ""  # no gRPC core lines (GOAWAY), Python warnings or tracebacks
    assert "momentosdk" in (tmp_path / "log").read_text()  # the SDK's warnings about the faults went to the log


# -- reproducibility: each run starts its own local server, seeded with --seed --------------------------------------


def report_without_timings(args: list[str], capsys: pytest.CaptureFixture[str], log: Path) -> tuple[int, list[str]]:
    """Run with a server of its own; the report's lines, without the key table (its "expires in" follows the
    clock), the log path and the run time."""
    status = main([*args, "--log-file", str(log)])
    lines = capsys.readouterr().out.splitlines()
    lines = lines[: next(i for i, line in enumerate(lines) if line.startswith("Handler logs"))]
    return status, [line.rstrip() for line in lines if "°C" not in line]


# The seed decides the workload, moto's identifiers, the handler's jitter (per key, on virtual Lambda time) and the
# server's faults (per method, key and attempt), so nothing depends on the order in which concurrent calls arrive.
def test_the_same_seed_replays_a_fault_run_line_for_line(capsys, tmp_path):
    args = ["--fault-rate", "0.3", "--seed", "7", "--show", "0"]

    first_status, first = report_without_timings(args, capsys, tmp_path / "first")
    second_status, second = report_without_timings(args, capsys, tmp_path / "second")

    summary = [line for line in first if line.startswith(("Stream", "Handler", "Momento calls", "Injected", "Topic"))]
    assert len(summary) == 5, first
    assert number(r"\((\d+) in all", " ".join(first)) > 0  # faults were injected
    assert first == second
    assert first_status == second_status


def test_the_readme_recovery_example_shows_keys_behind_then_equal_after_the_redrive(capsys, tmp_path):
    args = ["--fault-rate", "0.7", "--max-retries", "0", "--timeout", "1", "--seed", "4", "--redrive", "--show", "0"]

    status, lines = report_without_timings(args, capsys, tmp_path / "log")
    output = " ".join(" ".join(lines).split())

    assert status == 0, output
    behind = re.search(r"before the redrive: (\d+) \(([^)]*)\); equal to it now: (\d+) of", output)
    assert behind, output
    assert int(behind.group(1)) >= 1
    assert behind.group(3) == behind.group(1)
    assert f"{behind.group(1)} of 25 keys differ between cache and table: {behind.group(2)}." in output
    assert "All 25 keys equal after the redrive" in output
