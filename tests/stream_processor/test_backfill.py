"""The backfill: a moto table scanned in segments into the local Momento server through the real SDK.

Time is a fake clock that moves only when the backfill sleeps (rate limit, retry backoff), so the rate limit is checked
by counting calls per one-second window of that clock, never by measuring wall-clock time.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from typing import Any

import boto3
import grpc
import pytest

from local_pipeline.lambda_context import LambdaContext
from local_pipeline.momento_server import ERR_ITEM_SIZE, FaultRule, LocalMomentoServer
from stream_processor import backfill as backfill_module
from stream_processor.backfill import (
    BACKFILL_EVENT_SOURCE,
    Backfill,
    BackfillState,
    SegmentPosition,
    TableInfo,
)
from stream_processor.config import ConfigurationError, load_settings
from stream_processor.dead_letters import DeadLetterQueue
from stream_processor.key_sync import KeySync
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.observability import logger
from stream_processor.planner import ChangeRules, read_batch
from stream_processor.retries import Backoff, Deadline
from stream_processor.table_reads import TableReader
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.fakes import CurrentStdout, FakeClock
from tests.races import resync_without_recheck, while_held
from tests.stream_processor.records import image, modify, remove

TABLE = "weather"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:backfill"


class RecordingGateway:
    """The real Momento runtime, with the fake-clock time of every cache call it makes."""

    def __init__(self, runtime: MomentoRuntime, clock: FakeClock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.cache_call_seconds = runtime.cache_call_seconds
        self.publish_call_seconds = runtime.publish_call_seconds
        self.calls: list[tuple[float, str, str]] = []

    async def set(self, key: str, value: bytes, ttl_ms: int):
        self.calls.append((self.clock(), "set", key))
        return await self.runtime.set(key, value, ttl_ms)

    async def delete(self, key: str):
        self.calls.append((self.clock(), "delete", key))
        return await self.runtime.delete(key)

    async def publish(self, message: bytes):  # pragma: no cover - the backfill never publishes
        raise AssertionError("the backfill must not publish")

    def keys(self, method: str = "set") -> list[str]:
        return [key for _, called, key in self.calls if called == method]


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "Location", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Location", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def put(client, location: str, **attributes: Any) -> None:
    client.put_item(TableName=TABLE, Item=image(location, **attributes))


def fill(client, count: int) -> list[str]:
    locations = [f"city-{index:03d}" for index in range(count)]
    for index, location in enumerate(locations):
        put(client, location, MaxTemp=index)
    return locations


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def environment(server: LocalMomentoServer, **extra: str) -> dict[str, str]:
    return {
        "MOMENTO_LOCAL_ENDPOINT": server.endpoint,
        "CACHE_NAME": TEST_CACHE_NAME,
        "TOPIC_NAME": TEST_TOPIC_NAME,
        "TTL_ATTRIBUTE": "ttl",
        **extra,
    }


@pytest.fixture
def make_backfill(momento_server, dynamodb, clock, runtimes):
    """A factory of backfills against the test table, the fake clock and a recording gateway."""

    def make(server: LocalMomentoServer = momento_server, env: dict[str, str] | None = None, **options: Any):
        settings = load_settings(environment(server, **(env or {})))
        runtime = runtimes.open(settings)
        gateway = RecordingGateway(runtime, clock)
        options.setdefault("rate", 10_000)
        backfill = Backfill(
            settings,
            gateway,
            TableInfo.describe(dynamodb, TABLE),
            dynamodb=dynamodb,
            clock=clock,
            sleep=clock.sleep,
            backoff=Backoff(0.01, 0.1),
            **options,
        )
        return backfill, gateway

    return make


def run(backfill: Backfill, gateway: RecordingGateway, state: BackfillState):
    return gateway.runtime.run(backfill.run(state))


def cached(server: LocalMomentoServer) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in server.cache_items(TEST_CACHE_NAME).items()}


def test_every_item_is_set_with_the_stream_s_key_value_and_ttl_rules(dynamodb, make_backfill, momento_server):
    now = time.time()
    put(dynamodb, "Tokyo", MaxTemp="12345678901234567890.123456789", Raw={"B": b"\x00\xff"})
    put(dynamodb, "Oslo", MaxTemp=5, ttl=int(now) + 600)
    put(dynamodb, "Lima", MaxTemp=30, ttl=int(now) - 60)  # expired: DynamoDB has not removed it yet
    put(dynamodb, "Far", MaxTemp=1, ttl=int(now) + 10 * 86400)
    backfill, gateway = make_backfill()
    assert gateway.runtime.run(gateway.runtime.set("Lima", b"{}", 60_000)) is None  # a stale entry

    summary = run(backfill, gateway, BackfillState.new(TABLE, 3))

    assert cached(momento_server) == {
        "Tokyo": {"Location": "Tokyo", "MaxTemp": 12345678901234567890.123456789, "Raw": "AP8="},
        "Oslo": {"Location": "Oslo", "MaxTemp": 5, "ttl": int(now) + 600},
        "Far": {"Location": "Far", "MaxTemp": 1, "ttl": int(now) + 10 * 86400},
    }
    raw = momento_server.cache_items(TEST_CACHE_NAME)["Tokyo"]
    assert b'"MaxTemp":12345678901234567890.123456789' in raw  # exact digits, never through float
    assert momento_server.ttl_remaining_seconds(TEST_CACHE_NAME, "Tokyo") == pytest.approx(3600, abs=30)
    assert momento_server.ttl_remaining_seconds(TEST_CACHE_NAME, "Oslo") == pytest.approx(600, abs=30)
    assert momento_server.ttl_remaining_seconds(TEST_CACHE_NAME, "Far") == pytest.approx(86400, abs=30)
    assert (summary.items, summary.sets, summary.deletes, summary.complete) == (4, 3, 1, True)
    assert gateway.keys("delete") == ["Lima"]
    assert momento_server.published(TEST_CACHE_NAME, TEST_TOPIC_NAME) == []


def test_segments_split_the_scan_and_each_item_is_written_once(dynamodb, make_backfill, momento_server):
    locations = fill(dynamodb, 40)
    backfill, gateway = make_backfill(page_size=4)
    state = BackfillState.new(TABLE, 4)

    summary = run(backfill, gateway, state)

    assert sorted(gateway.keys()) == locations
    assert set(cached(momento_server)) == set(locations)
    assert all(position.done for position in state.positions)
    assert sum(position.items for position in state.positions) == 40
    assert sum(position.items > 0 for position in state.positions) >= 2  # the work really was split
    assert summary.items_total == 40


def test_key_template_applies_and_a_template_naming_a_non_key_attribute_is_refused(dynamodb, make_backfill):
    put(dynamodb, "Tokyo", MaxTemp=1)
    backfill, gateway = make_backfill(env={"KEY_TEMPLATE": "{table}:{Location}"})
    run(backfill, gateway, BackfillState.new(TABLE, 1))
    assert gateway.keys() == ["weather:Tokyo"]

    with pytest.raises(ConfigurationError, match="MaxTemp"):
        make_backfill(env={"KEY_TEMPLATE": "{MaxTemp}"})


def assert_at_most_per_second(times: list[float], rate: int, count: int) -> None:
    start = times[0]
    per_window = Counter(math.floor(at - start) for at in times)
    assert len(times) == count
    assert max(per_window.values()) <= rate
    assert max(per_window) >= math.ceil(count / rate) - 1  # spread, not dropped


# The fake clock adds up the sleeps of concurrent sleepers, so each test paces one kind of operation and leaves the
# other unpaced (an infinite rate never sleeps).


@pytest.mark.parametrize("rate", [7, 20])
def test_rate_limit_holds_in_every_one_second_window_across_segments(dynamodb, make_backfill, clock, rate):
    fill(dynamodb, 45)
    backfill, gateway = make_backfill(rate=rate, read_rate=math.inf, page_size=5)

    run(backfill, gateway, BackfillState.new(TABLE, 4))

    assert_at_most_per_second([at for at, _, _ in gateway.calls], rate, 45)


class CountingTableReader(TableReader):
    """The real table reader, counting its re-check reads."""

    def __init__(self, client: Any) -> None:
        super().__init__(lambda: client)
        self.reads = 0

    def get(self, table: str, keys: Any) -> Any:
        self.reads += 1
        return super().get(table, keys)


def test_re_check_reads_have_their_own_rate_limit(dynamodb, make_backfill, clock):
    fill(dynamodb, 30)
    reader = CountingTableReader(dynamodb)
    backfill, gateway = make_backfill(rate=math.inf, read_rate=7, page_size=5, table_reader=reader)
    paced_at: list[float] = []
    acquire = backfill.read_limiter.acquire

    async def recorded_acquire() -> None:
        await acquire()
        paced_at.append(clock())  # the read starts now (its thread may run a little later on the fake clock)

    backfill.read_limiter.acquire = recorded_acquire

    summary = run(backfill, gateway, BackfillState.new(TABLE, 3))

    assert summary.rechecks == reader.reads == 30
    assert_at_most_per_second(paced_at, 7, 30)


@pytest.mark.parametrize("recheck", [True, False], ids=["with the re-check", "planted bug: no re-check"])
def test_a_change_applied_by_the_stream_while_the_backfill_write_is_in_flight_is_not_overwritten(
    dynamodb, make_backfill, momento_server, handler, lambda_context, monkeypatch, recheck
):
    put(dynamodb, "Seattle", MaxTemp=14)
    if not recheck:
        monkeypatch.setattr(KeySync, "resync", resync_without_recheck)
    backfill, gateway = make_backfill()

    def live_change(caught) -> None:
        # The backfill has read MaxTemp 14 and its set is in flight: the item changes, the stream processor applies
        # the change, and only then does the backfill's set land.
        assert caught == [("Set", "Seattle")]
        put(dynamodb, "Seattle", MaxTemp=15)
        assert handler({"Records": [modify("Seattle", seq=7, MaxTemp=15)]}, lambda_context()) == {
            "batchItemFailures": []
        }
        assert cached(momento_server)["Seattle"]["MaxTemp"] == 15

    summary, _ = while_held(
        momento_server, lambda: run(backfill, gateway, BackfillState.new(TABLE, 1)), live_change, key="Seattle"
    )

    if recheck:
        assert cached(momento_server) == {"Seattle": {"Location": "Seattle", "MaxTemp": 15}}
        assert (summary.sets, summary.rechecks, summary.rewrites) == (2, 2, 1)
    else:  # the scenario really is the race: without the re-check the older value lands last and stays
        assert cached(momento_server) == {"Seattle": {"Location": "Seattle", "MaxTemp": 14}}


def test_an_item_deleted_while_the_backfill_write_is_in_flight_is_deleted_from_the_cache(
    dynamodb, make_backfill, momento_server, handler, lambda_context
):
    put(dynamodb, "Lima", MaxTemp=20)
    backfill, gateway = make_backfill()

    def deleted(caught) -> None:
        dynamodb.delete_item(TableName=TABLE, Key={"Location": {"S": "Lima"}})
        handler({"Records": [remove("Lima", seq=8, MaxTemp=20)]}, lambda_context())

    summary, _ = while_held(
        momento_server, lambda: run(backfill, gateway, BackfillState.new(TABLE, 1)), deleted, key="Lima"
    )

    assert cached(momento_server) == {}
    assert (summary.sets, summary.deletes, summary.rewrites) == (1, 1, 1)


def test_retryable_faults_are_retried_and_counted(dynamodb, make_backfill, momento_server):
    locations = fill(dynamodb, 5)
    momento_server.add_fault(FaultRule(method="Set", code=grpc.StatusCode.RESOURCE_EXHAUSTED, times=4))
    backfill, gateway = make_backfill()

    summary = run(backfill, gateway, BackfillState.new(TABLE, 2))

    assert summary.complete
    assert summary.retries == 4
    assert set(cached(momento_server)) == set(locations)


def test_fault_outlasting_retries_stops_the_segment_before_its_page(dynamodb, make_backfill, momento_server, clock):
    fill(dynamodb, 6)
    momento_server.add_fault(FaultRule(method="Set", code=grpc.StatusCode.UNAVAILABLE))

    def short_budget() -> Deadline:
        end = clock() + 3.0
        return Deadline(lambda: int((end - clock()) * 1000), reply_margin_seconds=0.0)

    backfill, gateway = make_backfill(retry_deadline=short_budget)
    state = BackfillState.new(TABLE, 1)

    summary = run(backfill, gateway, state)

    assert not summary.complete
    assert "SERVER_UNAVAILABLE" in summary.failures[0]
    assert state.positions[0] == SegmentPosition(0)  # a resume rewrites the whole page


def test_poison_item_is_deleted_listed_and_dead_lettered(dynamodb, make_backfill, runtimes, aws, capsys):
    logger.registered_handler.stream = CurrentStdout()
    queue_url = boto3.client("sqs").create_queue(QueueName="dlq")["QueueUrl"]
    put(dynamodb, "Big", Notes="x" * 2000)
    put(dynamodb, "Small", MaxTemp=1)
    with LocalMomentoServer(caches=[TEST_CACHE_NAME], max_item_bytes=512) as server:
        backfill, gateway = make_backfill(server, dead_letters=DeadLetterQueue(queue_url))
        assert gateway.runtime.run(gateway.runtime.set("Big", b'{"stale":true}', 60_000)) is None

        summary = run(backfill, gateway, BackfillState.new(TABLE, 1))

        assert set(server.cache_items(TEST_CACHE_NAME)) == {"Small"}
    assert summary.complete
    [poison] = summary.poison
    assert (poison.cache_key, poison.dead_lettered) == ("Big", True)
    assert ERR_ITEM_SIZE in poison.reason
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    [body] = [json.loads(message["Body"]) for message in messages]
    assert body["kind"] == "poison-record"
    assert body["record"] == {
        "eventSource": BACKFILL_EVENT_SOURCE,
        "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}",
        "dynamodb": {"Keys": {"Location": {"S": "Big"}}},
    }
    # The redrive can key it (and so resync it from the table), although it is not a stream record.
    rules = ChangeRules.from_settings(load_settings(environment(server)))
    assert list(read_batch([body["record"]], rules).by_key) == ["Big"]
    logged = capsys.readouterr().out
    assert "poison item" in logged and "backfill finished" in logged
    assert '"Big"' not in logged  # log lines never carry key (attribute) values; the summary and the DLQ do


def test_resume_continues_without_redoing_finished_pages(dynamodb, make_backfill, momento_server):
    locations = fill(dynamodb, 30)
    state = BackfillState.new(TABLE, 3)
    first, first_gateway = make_backfill(page_size=3, should_stop=lambda: "enough" if state.items >= 9 else None)

    stopped = run(first, first_gateway, state)

    assert not stopped.complete
    assert stopped.stopped == "enough"
    saved = json.loads(json.dumps(state.to_dict()))  # what the resume file / handler response carries
    resumed_state = BackfillState.from_dict(saved)
    assert resumed_state == state
    second, second_gateway = make_backfill(page_size=3)

    finished = run(second, second_gateway, resumed_state)

    assert finished.complete
    done_first, done_second = first_gateway.keys(), second_gateway.keys()
    assert not set(done_first) & set(done_second)
    assert sorted(done_first + done_second) == locations
    assert finished.items == 30 - stopped.items
    assert finished.items_total == 30


def test_resume_state_round_trips_binary_keys_and_rejects_garbage():
    state = BackfillState(
        "t",
        2,
        [
            SegmentPosition(0, {"id": {"B": b"\x00\xff"}, "n": {"N": "1"}}, items=3),
            SegmentPosition(1, None, done=True, items=5),
        ],
    )
    assert BackfillState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(ValueError, match="resume state"):
        BackfillState.from_dict({"table": "t", "segments": 2, "positions": [{"segment": 0}]})
    with pytest.raises(ValueError, match="resume state"):
        BackfillState.from_dict({"nothing": True})


def test_a_resume_state_of_another_table_is_refused(dynamodb, make_backfill):
    backfill, gateway = make_backfill()
    with pytest.raises(ValueError, match="other"):
        run(backfill, gateway, BackfillState.new("other", 1))


@pytest.fixture
def backfill_handler(monkeypatch, momento_env, dynamodb):
    for name, value in {**momento_env, "TTL_ATTRIBUTE": "ttl"}.items():
        monkeypatch.setenv(name, value)
    backfill_module.runtime.cache_clear()
    logger.registered_handler.stream = CurrentStdout()  # Powertools keeps the stdout of import time
    yield backfill_module.handler
    backfill_module.runtime()[1].close()
    backfill_module.runtime.cache_clear()


def test_handler_returns_resume_state_when_time_runs_low_and_continues_from_it(
    dynamodb, backfill_handler, momento_server
):
    locations = fill(dynamodb, 5)
    # The invocation's time is up once the first page (2 items) is in the cache.
    low_time = LambdaContext.for_invocation(
        function_arn=FUNCTION_ARN,
        timeout_seconds=600,
        memory_size_mb=256,
        log_stream_name="s",
        clock=lambda: 0.0 if momento_server.calls["Set"] < 2 else 10_000.0,
    )

    first = backfill_handler({"table": TABLE, "segments": 1, "rate": 1000, "pageSize": 2}, low_time)

    assert first["complete"] is False
    assert "time" in first["summary"]["stopped"]
    assert first["resume"]["positions"][0]["items"] == 2
    assert first["resume"]["positions"][0]["lastEvaluatedKey"] is not None
    json.dumps(first)  # the response must be JSON for Lambda
    calls_before = momento_server.calls["Set"]
    plenty = LambdaContext.for_invocation(
        function_arn=FUNCTION_ARN, timeout_seconds=600, memory_size_mb=256, log_stream_name="s"
    )

    second = backfill_handler({"resume": first["resume"], "rate": 1000, "pageSize": 2}, plenty)

    assert second["complete"] is True
    assert "resume" not in second
    assert second["summary"]["items"] == 3
    assert momento_server.calls["Set"] - calls_before == 3
    assert set(cached(momento_server)) == set(locations)


def test_handler_rejects_bad_input(backfill_handler):
    plenty = LambdaContext.for_invocation(
        function_arn=FUNCTION_ARN, timeout_seconds=600, memory_size_mb=256, log_stream_name="s"
    )
    with pytest.raises(ValueError, match="rate"):
        backfill_handler({"table": TABLE, "rate": 0}, plenty)
    with pytest.raises(ValueError, match="segments"):
        backfill_handler({"table": TABLE, "segments": "many"}, plenty)


def test_cli_runs_are_explicit_a_rerun_rebuilds_and_a_completed_state_is_never_resumed(
    dynamodb, monkeypatch, momento_env, momento_server, tmp_path, capsys
):
    for name, value in momento_env.items():
        monkeypatch.setenv(name, value)
    locations = fill(dynamodb, 12)
    state_file = tmp_path / "weather.json"
    args = ["--table", TABLE, "--segments", "2", "--rate", "100000", "--json"]

    assert backfill_module.main([*args, "--state-file", str(state_file)]) == 0

    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert (summary["complete"], summary["items"], summary["sets"], summary["recheckReads"]) == (True, 12, 12, 12)
    assert f"checkpoints: {state_file}" in out.err
    assert not state_file.exists()  # complete: nothing is left to resume
    assert set(cached(momento_server)) == set(locations)

    # The cache is lost (flushed, say): running the backfill again rebuilds it from the beginning.
    momento_server.reset()
    momento_server.create_cache(TEST_CACHE_NAME)
    monkeypatch.chdir(tmp_path)
    assert backfill_module.main(args) == 0
    assert json.loads(capsys.readouterr().out)["sets"] == 12
    assert set(cached(momento_server)) == set(locations)

    finished = BackfillState.new(TABLE, 2)
    for position in finished.positions:
        position.done, position.items = True, 6
    state_file.write_text(json.dumps(finished.to_dict()))
    with pytest.raises(SystemExit) as exit_status:
        backfill_module.main(["--resume", str(state_file)])
    assert exit_status.value.code == 2
    assert "completed backfill" in capsys.readouterr().err


def test_cli_interrupted_run_keeps_its_state_file_and_resume_finishes_it(
    dynamodb, monkeypatch, momento_env, momento_server, tmp_path, capsys
):
    for name, value in momento_env.items():
        monkeypatch.setenv(name, value)
    locations = fill(dynamodb, 6)
    state_file = tmp_path / "run.json"
    # Every Set of one key fails for longer than the CLI's retry budget allows: its page is not done.
    momento_server.add_fault(FaultRule(method="Set", key="city-004", code=grpc.StatusCode.PERMISSION_DENIED))

    status = backfill_module.main(
        ["--table", TABLE, "--segments", "1", "--rate", "100000", "--state-file", str(state_file)]
    )

    err = capsys.readouterr().err
    assert status == 1
    assert f"--resume {state_file}" in err
    saved = BackfillState.from_dict(json.loads(state_file.read_text()))
    assert not saved.complete
    with pytest.raises(SystemExit):  # a new run never silently continues (or overwrites) an existing state file
        backfill_module.main(["--table", TABLE, "--state-file", str(state_file)])

    momento_server.clear_faults()
    assert backfill_module.main(["--resume", str(state_file)]) == 0
    assert set(cached(momento_server)) == set(locations)
    assert not state_file.exists()


def test_cli_without_a_region_says_so_in_one_line(monkeypatch, momento_env, capsys):
    for name, value in momento_env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    with pytest.raises(SystemExit) as exit_status:
        backfill_module.main(["--table", TABLE])

    assert exit_status.value.code == 2
    err = capsys.readouterr().err
    assert "no AWS region" in err
    assert "Traceback" not in err
