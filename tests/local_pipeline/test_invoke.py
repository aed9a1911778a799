"""`make invoke`: SAM-generated events, overrides as `sam local invoke --env-vars`, crashes and bad input.

The in-process runs use the session's local Momento server, so what `make invoke` prints can be checked against
what the server holds; one run goes through the real `make invoke` command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_pipeline import invoke
from stream_processor import app
from tests.local_pipeline.invoke_output import blocks, cache_entries, messages, response

REPO = Path(__file__).resolve().parents[2]
CACHE, TOPIC = "dynamodb-cache", "dynamodb-changes"  # the template's defaults
SAM = [sys.executable, "-m", "samcli", "local", "generate-event", "dynamodb", "update"]


def sam_event(tmp_path: Path, *options: str) -> Path:
    """`sam local generate-event dynamodb update` (an INSERT, a MODIFY and a REMOVE of item Id 101), as a file."""
    completed = subprocess.run(
        [*SAM, *options],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    path = tmp_path / "sam-event.json"
    path.write_text(completed.stdout)
    return path


def run(argv: list[str], server, capsys) -> tuple[int, str, str]:
    status = invoke.main(argv, server=server)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def check_printout_is_the_servers(output: str, server) -> None:
    printed = {key: value for key, (value, _) in cache_entries(output).items()}
    held = {key: json.loads(value) for key, value in server.cache_items(CACHE).items()}
    assert printed == held
    assert messages(output) == [json.loads(m) for m in server.published(CACHE, TOPIC)]


def test_a_sam_generated_event_processes_insert_modify_remove(momento_server, capsys, tmp_path):
    event = sam_event(tmp_path)

    status, output, errors = run([str(event)], momento_server, capsys)

    assert status == 0, output
    assert response(output) == {"batchItemFailures": []}
    assert [(m["eventName"], m["key"], m["table"]) for m in messages(output)] == [
        ("INSERT", "101", "ExampleTableWithStream"),
        ("MODIFY", "101", "ExampleTableWithStream"),
        ("REMOVE", "101", "ExampleTableWithStream"),
    ]
    assert momento_server.cache_items(CACHE) == {}  # the item was removed last
    assert "the handler deleted 1 key (named by the messages, absent from the cache: 101)" in output
    check_printout_is_the_servers(output, momento_server)
    assert errors == ""


def test_each_record_of_a_sam_event_on_its_own(momento_server, capsys, tmp_path):
    records = json.loads(sam_event(tmp_path).read_text())["Records"]
    expected = {
        "INSERT": {"Id": 101, "Message": "New item!"},
        "MODIFY": {"Id": 101, "Message": "This item has changed"},
    }

    for record in records:
        momento_server.reset()
        single = tmp_path / f"{record['eventName']}.json"
        single.write_text(json.dumps({"Records": [record]}))

        status, output, _ = run([str(single)], momento_server, capsys)

        assert status == 0, output
        entries = cache_entries(output)
        if record["eventName"] == "REMOVE":
            assert entries == {}
        else:
            ((value, ttl),) = [entries["101"]]
            assert value == expected[record["eventName"]]
            assert ttl == pytest.approx(3600, abs=2)  # no TTL attribute: the template's DEFAULT_TTL_SECONDS
        check_printout_is_the_servers(output, momento_server)


def test_a_sam_event_from_another_region_partition_and_table(momento_server, capsys, tmp_path):
    event = sam_event(tmp_path, "--region", "eu-west-1", "--partition", "aws-cn", "--table", "Orders")

    status, output, _ = run([str(event)], momento_server, capsys)

    assert status == 0, output
    assert {m["table"] for m in messages(output)} == {"Orders"}
    assert "DLQ_URL=https://sqs.eu-west-1.amazonaws.com/" in output  # the function runs in the stream's region
    check_printout_is_the_servers(output, momento_server)


def test_overrides_come_from_the_shell_then_the_env_vars_file_and_momento_keys_are_ignored(
    momento_server, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("TOPIC_NAME", "from-the-shell")
    monkeypatch.setenv("KEY_TEMPLATE", "shell:{Location}")
    monkeypatch.setenv("MOMENTO_API_KEY_SECRET", "arn:aws:secretsmanager:us-east-1:123456789012:secret:in-the-shell")
    env_vars = tmp_path / "env.json"
    secret = "not-a-real-key-but-never-print-it"
    env_vars.write_text(
        json.dumps(
            {
                "Parameters": {"KEY_TEMPLATE": "all:{Location}", "UNDECLARED": "x"},
                "StreamProcessorFunction": {"KEY_TEMPLATE": "weather:{Location}", "MOMENTO_API_KEY": secret},
            }
        )
    )

    status, output, _ = run(["events/insert.json", "--env-vars", str(env_vars)], momento_server, capsys)

    assert status == 0, output
    assert list(momento_server.cache_items(CACHE)) == ["weather:Seattle"]  # the file's function section wins
    assert len(momento_server.published(CACHE, "from-the-shell")) == 1  # the shell beats the template
    assert "not declared by the template, so not set (as sam local): UNDECLARED" in output
    assert (
        "ignored: MOMENTO_API_KEY, MOMENTO_API_KEY_SECRET (make invoke always uses its local Momento server)" in output
    )
    assert secret not in output


def test_a_configuration_error_is_one_line_and_exit_status_1(momento_server, capsys, tmp_path):
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"StreamProcessorFunction": {"DEFAULT_TTL_SECONDS": "90000"}}))

    status, output, errors = run(["events/insert.json", "--env-vars", str(env_vars)], momento_server, capsys)

    assert status == 1
    assert blocks(output)["Error"] == [
        "configuration error: DEFAULT_TTL_SECONDS (90000) must not exceed MAX_TTL_SECONDS (86400)"
    ]
    assert "Traceback" not in output
    assert errors == ""  # no Powertools "No application metrics to publish" warning


def test_a_crash_exits_1_with_the_traceback(momento_server, capsys, monkeypatch):
    def broken_processor():
        raise RuntimeError("something the handler did not expect")

    broken_processor.cache_clear = lambda: None
    broken_processor.cache_info = app.processor.cache_info
    monkeypatch.setattr(app, "processor", broken_processor)

    status, output, _ = run(["events/insert.json"], momento_server, capsys)

    assert status == 1
    error = blocks(output)["Error"]
    assert error[0] == "Traceback (most recent call last):"
    assert error[-1] == "RuntimeError: something the handler did not expect"
    assert "Response   none: the handler raised" in output


@pytest.mark.parametrize(
    ("event", "content", "message"),
    [
        ("", None, "no event file given: make invoke EVENT=path/to/event.json"),
        ("missing.json", None, "event file not found: "),
        ("bad.json", "{not json", "is not valid JSON"),
    ],
)
def test_an_unusable_event_file_is_one_line_and_exit_status_2(capsys, tmp_path, event, content, message):
    path = tmp_path / event if event else Path("")
    if content is not None:
        path.write_text(content)

    with pytest.raises(SystemExit) as stopped:
        invoke.main([str(path) if event else ""])

    assert stopped.value.code == 2
    errors = capsys.readouterr().err
    assert errors.count("\n") == 1 and errors.startswith("make invoke: ") and message in errors


def test_make_invoke(tmp_path):
    venv = Path(sys.executable).parent.parent
    make = ["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/.local-installed", "invoke"]
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "GRPC_VERBOSITY")}

    completed = subprocess.run(
        [*make, "EVENT=events/insert.json", f"ARGS=--log-file {tmp_path / 'log'}"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    missing = subprocess.run(
        [*make, "EVENT=events/no-such-event.json"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stderr == ""  # no gRPC core lines, Python warnings or tracebacks
    assert response(completed.stdout) == {"batchItemFailures": []}
    (entry,) = cache_entries(completed.stdout).items()
    assert entry[0] == "Seattle"
    assert [m["eventName"] for m in messages(completed.stdout)] == ["INSERT"]
    assert '"batch processed"' in (tmp_path / "log").read_text()
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[0] == "make invoke: event file not found: events/no-such-event.json"
