"""The redrive: DLQ messages back to a correct cache, on moto (DynamoDB, Streams, SQS) and the local Momento server.

Momento is the real SDK talking to the local server; retries back off on a fake clock, so no test waits.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import grpc
import pytest
from botocore.stub import Stubber

from local_pipeline.event_source_mapping import FailureCondition, on_failure_message
from local_pipeline.lambda_context import LambdaContext
from local_pipeline.momento_server import ERR_ITEM_SIZE, FaultRule, LocalMomentoServer
from stream_processor import redrive as redrive_module
from stream_processor.config import load_settings
from stream_processor.dead_letters import POISON_KIND
from stream_processor.key_sync import KeySync
from stream_processor.observability import logger
from stream_processor.redrive import BACKFILL_HINT, Redrive, RedriveOptions
from stream_processor.retries import Backoff
from stream_processor.stream_records import read_stream_range
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME, OpenedRuntimes
from tests.fakes import CurrentStdout, FakeClock
from tests.races import resync_without_recheck, while_held
from tests.stream_processor.records import image, insert, modify, record

TABLE = "weather"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stream-processor"


class Table:
    """The weather table in moto, with its stream."""

    def __init__(self) -> None:
        self.client = boto3.client("dynamodb")
        description = self.client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "Location", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Location", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        self.stream_arn = description["LatestStreamArn"]
        self.streams = boto3.client("dynamodbstreams")

    def put(self, location: str, **attributes: Any) -> None:
        self.client.put_item(TableName=TABLE, Item=image(location, **attributes))

    def delete(self, location: str) -> None:
        self.client.delete_item(TableName=TABLE, Key={"Location": {"S": location}})

    def stream_records(self) -> tuple[str, list[dict[str, Any]]]:
        """The shard id and every record in it so far (as GetRecords returns them)."""
        shard_id = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return shard_id, self.streams.get_records(ShardIterator=iterator)["Records"]

    def on_failure(self, records: list[dict[str, Any]], shard_id: str, stream_arn: str | None = None) -> dict:
        """Lambda's on-failure destination message for a discarded batch of these records."""
        return on_failure_message(
            condition=FailureCondition.RETRY_ATTEMPTS_EXHAUSTED,
            records=records,
            shard_id=shard_id,
            stream_arn=stream_arn or self.stream_arn,
            function_arn=FUNCTION_ARN,
            request_id="c0ffee00-0000-4000-8000-000000000000",
            approximate_invoke_count=3,
            function_error=None,
            now=time.time(),
        )


class Queue:
    def __init__(self) -> None:
        self.sqs = boto3.client("sqs")
        self.url = self.sqs.create_queue(QueueName="stream-processor-dlq")["QueueUrl"]

    def send(self, body: dict[str, Any]) -> str:
        return self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))["MessageId"]

    def visible(self) -> list[dict[str, Any]]:
        """The visible messages' bodies, left visible."""
        response = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(message["Body"]) for message in response.get("Messages", [])]


def poison(reason: str, rec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": POISON_KIND, "reason": reason, "record": rec}


@pytest.fixture
def table(aws) -> Table:
    return Table()


@pytest.fixture
def queue(aws) -> Queue:
    return Queue()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


def build(server: LocalMomentoServer, queue: Queue, clock: FakeClock, opened: OpenedRuntimes) -> Redrive:
    settings = load_settings(
        {
            "MOMENTO_LOCAL_ENDPOINT": server.endpoint,
            "CACHE_NAME": TEST_CACHE_NAME,
            "TOPIC_NAME": TEST_TOPIC_NAME,
            "DLQ_URL": queue.url,
            "TTL_ATTRIBUTE": "ttl",
        }
    )
    runtime = opened.open(settings)
    return Redrive(settings, runtime, backoff=Backoff(0.01, 0.1), clock=clock, sleep=clock.sleep)


@pytest.fixture
def redrive(momento_server, queue, clock, runtimes) -> Redrive:
    return build(momento_server, queue, clock, runtimes)


def run(redrive: Redrive, queue: Queue, **options: Any):
    return redrive.run(RedriveOptions(queue_url=queue.url, wait_seconds=0, **options))


def published(server: LocalMomentoServer) -> list[dict[str, Any]]:
    return [json.loads(message) for message in server.published(TEST_CACHE_NAME, TEST_TOPIC_NAME)]


def cached(server: LocalMomentoServer) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in server.cache_items(TEST_CACHE_NAME).items()}


def seed_cache(redrive: Redrive, key: str, value: dict[str, Any]) -> None:
    """A stale cache entry, as the failed batch may have left it."""
    assert redrive.momento is not None
    assert redrive.momento.run(redrive.momento.set(key, json.dumps(value).encode(), 60_000)) is None


# -- on-failure records --------------------------------------------------------------------------------------------


def test_on_failure_range_resyncs_keys_from_the_current_table_and_publishes_each_record(
    table, queue, redrive, momento_server
):
    table.put("Tokyo", MaxTemp=20)
    table.put("Tokyo", MaxTemp=21)
    table.put("Oslo", MaxTemp=5)
    table.delete("Oslo")
    shard_id, discarded = table.stream_records()
    table.put("Tokyo", MaxTemp=25)  # newer than the discarded range: the cache must get this, not MaxTemp 21
    table.put("Lima", MaxTemp=30)  # after the range: not the redrive's business
    queue.send(table.on_failure(discarded, shard_id))
    seed_cache(redrive, "Oslo", {"Location": "Oslo", "MaxTemp": 5})

    summary = run(redrive, queue)

    assert cached(momento_server) == {"Tokyo": {"Location": "Tokyo", "MaxTemp": 25}}
    messages = published(momento_server)
    assert [(m["eventName"], m["key"], m["sequenceNumber"]) for m in messages if m["key"] == "Tokyo"] == [
        ("INSERT", "Tokyo", discarded[0]["dynamodb"]["SequenceNumber"]),
        ("MODIFY", "Tokyo", discarded[1]["dynamodb"]["SequenceNumber"]),
    ]
    assert [(m["eventName"], m["key"]) for m in messages if m["key"] == "Oslo"] == [
        ("INSERT", "Oslo"),
        ("REMOVE", "Oslo"),
    ]
    assert all(m["redriven"] is True for m in messages)
    assert {m["eventID"] for m in messages} == {r["eventID"] for r in discarded}
    first_tokyo = next(m for m in messages if m["key"] == "Tokyo")  # keys publish concurrently: pick Tokyo's own
    assert first_tokyo["newImage"] == {"Location": "Tokyo", "MaxTemp": 20}  # the record's own message, redriven
    assert summary.messages_read == 1
    assert summary.keys_resynced == 2
    assert summary.messages_published == 4
    assert summary.messages_deleted == 1
    assert summary.kept == []
    assert queue.visible() == []


def test_read_stream_range_returns_lambda_shaped_records_of_exactly_the_range(table):
    table.put("A", MaxTemp=1)
    table.put("B", MaxTemp=2, Raw={"B": b"\x00\xff"})
    table.put("C", MaxTemp=3)
    shard_id, records = table.stream_records()

    got = read_stream_range(
        table.streams,
        stream_arn=table.stream_arn,
        shard_id=shard_id,
        start_sequence_number=records[1]["dynamodb"]["SequenceNumber"],
        end_sequence_number=records[1]["dynamodb"]["SequenceNumber"],
    )

    assert len(got) == 1
    assert got[0]["eventSourceARN"] == table.stream_arn
    assert got[0]["eventVersion"] == "1.1"
    assert got[0]["dynamodb"]["NewImage"]["Raw"] == {"B": "AP8="}
    assert isinstance(got[0]["dynamodb"]["ApproximateCreationDateTime"], float)


def test_range_of_a_stream_that_no_longer_exists_is_kept_and_points_at_the_backfill(table, queue, redrive):
    table.put("Tokyo", MaxTemp=20)
    shard_id, records = table.stream_records()
    gone = table.stream_arn.replace(f"table/{TABLE}/", "table/deleted-table/")
    queue.send(table.on_failure(records, shard_id, stream_arn=gone))

    summary = run(redrive, queue)

    assert summary.messages_deleted == 0
    assert len(summary.kept) == 1
    assert "no longer exists" in summary.kept[0].reason
    assert summary.to_dict()["hint"] == BACKFILL_HINT
    assert "backfill" in summary.text()
    assert len(queue.visible()) == 1  # kept, and visible again at once


@pytest.mark.parametrize("trim", ["TrimmedDataAccessException", "first record past the start"])
def test_trimmed_range_is_kept_with_a_clear_report(table, queue, redrive, momento_server, trim):
    table.put("Tokyo", MaxTemp=20)
    shard_id, records = table.stream_records()
    queue.send(table.on_failure(records, shard_id))
    streams = boto3.client("dynamodbstreams")
    stubber = Stubber(streams)
    start = records[0]["dynamodb"]["SequenceNumber"]
    if trim == "TrimmedDataAccessException":
        stubber.add_client_error("get_shard_iterator", "TrimmedDataAccessException", "trimmed")
    else:
        later = dict(records[0], dynamodb={**records[0]["dynamodb"], "SequenceNumber": str(int(start) + 7)})
        stubber.add_response("get_shard_iterator", {"ShardIterator": "i" * 10})
        stubber.add_response("get_records", {"Records": [later], "NextShardIterator": "j" * 10})
    redrive._streams = streams

    with stubber:
        summary = run(redrive, queue)

    stubber.assert_no_pending_responses()
    assert [o.backfill_needed for o in summary.kept] == [True]
    assert "24-hour retention" in summary.kept[0].reason
    assert summary.to_dict()["hint"] == BACKFILL_HINT
    assert published(momento_server) == []
    assert len(queue.visible()) == 1


def test_invalid_on_failure_record_is_kept(queue, redrive):
    queue.send({"DDBStreamBatchInfo": {"shardId": "x"}, "version": "1.0"})
    queue.send({"something": "else"})

    summary = run(redrive, queue)

    assert summary.messages_read == 2
    reasons = sorted(o.reason for o in summary.kept)
    assert reasons[0].startswith("neither a Lambda on-failure record nor a poison record")
    assert reasons[1].startswith("not a valid Lambda on-failure record")
    assert len(queue.visible()) == 2


# -- poison records ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recheck", [True, False], ids=["with the re-check", "planted bug: no re-check"])
def test_a_change_applied_by_the_stream_while_the_redrive_write_is_in_flight_is_not_overwritten(
    table, queue, redrive, momento_server, handler, lambda_context, monkeypatch, recheck
):
    # A discarded batch touched Oslo; the redrive reads Oslo (MaxTemp 3) and its set is in flight when the item
    # changes and the live stream processor applies the change.
    table.put("Oslo", MaxTemp=3)
    shard_id, records = table.stream_records()
    queue.send(table.on_failure(records, shard_id))
    if not recheck:
        monkeypatch.setattr(KeySync, "resync", resync_without_recheck)

    def live_change(caught) -> None:
        assert caught == [("Set", "Oslo")]
        table.put("Oslo", MaxTemp=4)
        assert handler({"Records": [modify("Oslo", seq=90, MaxTemp=4)]}, lambda_context()) == {"batchItemFailures": []}

    summary, _ = while_held(momento_server, lambda: run(redrive, queue), live_change, key="Oslo")

    if recheck:
        assert cached(momento_server) == {"Oslo": {"Location": "Oslo", "MaxTemp": 4}}
        assert (summary.keys_resynced, summary.rechecks, summary.rewrites, summary.kept) == (1, 2, 1, [])
        assert queue.visible() == []
    else:  # the scenario really is the race: without the re-check the older value lands last and stays
        assert cached(momento_server)["Oslo"]["MaxTemp"] == 3


def test_poison_record_with_an_old_image_gets_the_table_s_newer_item(table, queue, redrive, momento_server):
    table.put("Tokyo", MaxTemp=25, MinTemp=18)
    stale = modify("Tokyo", seq=100, MaxTemp=21, old={"MaxTemp": 20})
    queue.send(poison("LIMIT_EXCEEDED_ERROR (item_size_limit_exceeded): the item is too large for the cache", stale))

    summary = run(redrive, queue)

    assert cached(momento_server) == {"Tokyo": {"Location": "Tokyo", "MaxTemp": 25, "MinTemp": 18}}
    assert momento_server.ttl_remaining_seconds(TEST_CACHE_NAME, "Tokyo") == pytest.approx(3600, abs=60)
    [message] = published(momento_server)
    assert message["eventName"] == "MODIFY"
    assert message["eventID"] == stale["eventID"]
    assert message["newImage"] == {"Location": "Tokyo", "MaxTemp": 21}  # the record's change, marked redriven
    assert message["redriven"] is True
    assert summary.messages_deleted == 1
    assert queue.visible() == []


def test_item_deleted_since_is_deleted_from_the_cache(table, queue, redrive, momento_server):
    seed_cache(redrive, "Oslo", {"Location": "Oslo", "MaxTemp": 5})
    queue.send(poison("some reason", insert("Oslo", seq=7, MaxTemp=5)))

    summary = run(redrive, queue)

    assert cached(momento_server) == {}
    assert summary.messages[0].keys == {"Oslo": "delete"}
    assert [m["eventName"] for m in published(momento_server)] == ["INSERT"]
    assert queue.visible() == []


def test_expired_item_is_deleted_from_the_cache(table, queue, redrive, momento_server, clock):
    table.put("Oslo", MaxTemp=5, ttl=int(clock.now) - 60)
    seed_cache(redrive, "Oslo", {"Location": "Oslo", "MaxTemp": 5})
    queue.send(poison("some reason", insert("Oslo", seq=7, MaxTemp=5)))

    run(redrive, queue)

    assert cached(momento_server) == {}
    assert queue.visible() == []


def test_unparseable_record_with_a_known_key_publishes_a_resync_message(table, queue, redrive, momento_server):
    table.put("Tokyo", MaxTemp=25)
    bad = record("UPSERT", "Tokyo", seq=42, new=image("Tokyo", MaxTemp=99))
    queue.send(poison("unknown eventName 'UPSERT': expected INSERT, MODIFY or REMOVE", bad))
    table.put("Gone", MaxTemp=1)
    table.delete("Gone")
    queue.send(poison("unknown eventName 'UPSERT'", record("UPSERT", "Gone", seq=43)))

    summary = run(redrive, queue)

    assert cached(momento_server) == {"Tokyo": {"Location": "Tokyo", "MaxTemp": 25}}
    messages = {m["key"]: m for m in published(momento_server)}
    assert messages["Tokyo"] == {
        "eventName": "RESYNC",
        "eventID": bad["eventID"],
        "sequenceNumber": "42",
        "table": TABLE,
        "key": "Tokyo",
        "keys": {"Location": "Tokyo"},
        "newImage": {"Location": "Tokyo", "MaxTemp": 25},
        "expired": False,
        "redriven": True,
    }
    assert "newImage" not in messages["Gone"]
    assert summary.messages_deleted == 2
    assert queue.visible() == []


def test_record_with_a_malformed_image_drains_as_a_resync_message(table, queue, redrive, momento_server):
    # The stream processor dead-lettered this record (an attribute of a type DynamoDB does not have); its key is
    # readable, so the redrive resyncs the key from the table and publishes a resync message: nothing stays.
    table.put("Lima", MaxTemp=19)
    bad = insert("Lima", seq=51, MaxTemp=18)
    bad["dynamodb"]["NewImage"]["Odd"] = {"XYZ": "?"}
    queue.send(poison("malformed record: attribute 'Odd': unknown DynamoDB type", bad))

    summary = run(redrive, queue)

    assert summary.kept == []
    assert summary.poison_resent == 0
    assert queue.visible() == []
    assert cached(momento_server) == {"Lima": {"Location": "Lima", "MaxTemp": 19}}
    [message] = published(momento_server)
    assert (message["eventName"], message["eventID"], message["sequenceNumber"]) == ("RESYNC", bad["eventID"], "51")
    assert message["newImage"] == {"Location": "Lima", "MaxTemp": 19}
    assert message["redriven"] is True


def test_poison_without_a_readable_key_stays_with_the_reason_updated(queue, redrive, momento_server):
    queue.send(poison("old reason", {"eventSource": "aws:dynamodb", "eventName": "INSERT"}))

    summary = run(redrive, queue)

    [kept] = queue.visible()
    assert kept["kind"] == POISON_KIND
    assert kept["record"] == {"eventSource": "aws:dynamodb", "eventName": "INSERT"}
    assert kept["reason"] != "old reason"
    assert "dynamodb" in kept["reason"]
    assert summary.poison_resent == 1
    assert len(summary.kept) == 1
    assert published(momento_server) == []


def test_item_still_too_large_stays_poison_with_the_reason_updated(table, queue, clock, runtimes, aws):
    with LocalMomentoServer(caches=[TEST_CACHE_NAME], max_item_bytes=512) as server:
        redrive = build(server, queue, clock, runtimes)
        seed_cache(redrive, "Tokyo", {"Location": "Tokyo", "MaxTemp": 1})
        table.put("Tokyo", Notes="x" * 2000)
        original = poison("a reason from before", modify("Tokyo", seq=100, MaxTemp=2))
        queue.send(original)

        summary = run(redrive, queue)

        assert server.cache_items(TEST_CACHE_NAME) == {}  # never a stale value
        assert server.published(TEST_CACHE_NAME, TEST_TOPIC_NAME) == []
    [kept] = queue.visible()
    assert kept["record"] == original["record"]
    assert ERR_ITEM_SIZE in kept["reason"]
    assert summary.messages_read == 1  # the re-sent message is not redriven again in the same run
    assert summary.poison_resent == 1
    assert ERR_ITEM_SIZE in summary.kept[0].reason


# -- failures, dry run, entry points -------------------------------------------------------------------------------


def test_momento_fault_that_outlasts_retries_keeps_the_message(table, queue, redrive, momento_server, capsys):
    logger.registered_handler.stream = CurrentStdout()
    table.put("Tokyo-7f3a", MaxTemp=25)
    queue.send(poison("r", modify("Tokyo-7f3a", seq=100, MaxTemp=21)))
    momento_server.add_fault(FaultRule(method="Set", code=grpc.StatusCode.UNAVAILABLE))

    summary = run(redrive, queue, retry_seconds=3.0)

    assert summary.messages_deleted == 0
    assert "SERVER_UNAVAILABLE" in summary.kept[0].reason
    assert "SERVER_UNAVAILABLE" in summary.kept[0].failed_keys["Tokyo-7f3a"]
    assert "Tokyo-7f3a" in summary.text()  # the operator's report names the key...
    logged = capsys.readouterr().out
    assert "message kept" in logged and "redrive finished" in logged
    assert "Tokyo-7f3a" not in logged  # ...log lines never carry key (attribute) values
    assert cached(momento_server) == {}
    assert published(momento_server) == []
    assert len(queue.visible()) == 1


def test_a_publish_fault_keeps_the_message_even_though_the_cache_was_resynced(table, queue, redrive, momento_server):
    table.put("Tokyo", MaxTemp=25)
    queue.send(poison("r", modify("Tokyo", seq=100, MaxTemp=21)))
    momento_server.add_fault(FaultRule(method="Publish", code=grpc.StatusCode.UNAVAILABLE))

    summary = run(redrive, queue, retry_seconds=3.0)

    assert cached(momento_server) == {"Tokyo": {"Location": "Tokyo", "MaxTemp": 25}}
    assert summary.messages_deleted == 0
    assert len(queue.visible()) == 1


def test_transient_fault_is_retried_and_the_message_deleted(table, queue, redrive, momento_server):
    table.put("Tokyo", MaxTemp=25)
    queue.send(poison("r", modify("Tokyo", seq=100, MaxTemp=21)))
    momento_server.add_fault(FaultRule(method="Publish", code=grpc.StatusCode.UNAVAILABLE, times=2))

    summary = run(redrive, queue)

    assert summary.messages_deleted == 1
    assert len(published(momento_server)) == 1
    assert queue.visible() == []


def test_dry_run_changes_nothing_and_reports_what_it_would_do(table, queue, redrive, momento_server):
    table.put("Tokyo", MaxTemp=25)
    seed_cache(redrive, "Oslo", {"Location": "Oslo"})
    queue.send(poison("r", modify("Tokyo", seq=100, MaxTemp=21)))
    queue.send(poison("r", insert("Oslo", seq=101, MaxTemp=21)))
    calls_before = momento_server.calls

    summary = run(redrive, queue, dry_run=True)

    assert momento_server.calls == calls_before
    assert cached(momento_server) == {"Oslo": {"Location": "Oslo"}}
    assert published(momento_server) == []
    assert len(queue.visible()) == 2
    assert {key: action for o in summary.messages for key, action in o.keys.items()} == {
        "Tokyo": "set",
        "Oslo": "delete",
    }
    assert (summary.keys_resynced, summary.messages_published, summary.messages_deleted) == (2, 2, 2)
    assert "dry run" in summary.text()


def test_max_messages_bounds_the_run(table, queue, redrive):
    for seq in range(3):
        queue.send(poison("r", insert("Gone", seq=seq, MaxTemp=1)))

    summary = run(redrive, queue, max_messages=2)

    assert summary.messages_read == 2
    assert summary.stopped == "maxMessages (2) reached"
    assert len(queue.visible()) == 1


@pytest.fixture
def redrive_handler(monkeypatch, momento_env, queue, capsys):
    for name, value in {**momento_env, "DLQ_URL": queue.url}.items():
        monkeypatch.setenv(name, value)
    redrive_module.redrive.cache_clear()
    logger.registered_handler.stream = CurrentStdout()  # Powertools keeps the stdout of import time
    yield redrive_module.handler
    redrive_module.redrive().momento.close()
    redrive_module.redrive.cache_clear()


def context(remaining_seconds: float) -> LambdaContext:
    return LambdaContext.for_invocation(
        function_arn=FUNCTION_ARN, timeout_seconds=remaining_seconds, memory_size_mb=256, log_stream_name="s"
    )


def test_handler_redrives_the_dlq_url_queue_and_returns_the_summary(
    table, queue, redrive_handler, momento_server, capsys
):
    table.put("Tokyo", MaxTemp=25)
    queue.send(poison("r", modify("Tokyo", seq=100, MaxTemp=21)))
    queue.send(poison("r", modify("Tokyo", seq=101, MaxTemp=22)))

    result = redrive_handler({"maxMessages": 1, "waitSeconds": 0}, context(600))

    assert result["messagesRead"] == 1
    assert result["messagesDeleted"] == 1
    assert result["stopped"] == "maxMessages (1) reached"
    assert len(queue.visible()) == 1
    assert "redrive finished" in capsys.readouterr().out


def test_handler_stops_when_time_runs_low(queue, redrive_handler):
    queue.send(poison("r", insert("Tokyo", seq=1)))

    result = redrive_handler({"dryRun": True, "waitSeconds": 0}, context(5))

    assert result["messagesRead"] == 0
    assert "time ran low" in result["stopped"]
    assert len(queue.visible()) == 1


def test_handler_rejects_a_bad_max_messages(redrive_handler):
    with pytest.raises(ValueError, match="maxMessages"):
        redrive_handler({"maxMessages": 0}, context(600))


def test_cli_prints_the_summary_and_exits_1_when_messages_stay(
    table, queue, monkeypatch, momento_env, capsys, momento_server
):
    for name, value in momento_env.items():
        monkeypatch.setenv(name, value)
    queue.send({"not": "a dlq message"})
    table.put("Tokyo", MaxTemp=25)
    queue.send(poison("r", modify("Tokyo", seq=100, MaxTemp=21)))

    status = redrive_module.main(["--queue-url", queue.url, "--wait-seconds", "0", "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert status == 1
    assert (summary["messagesRead"], summary["messagesDeleted"], len(summary["kept"])) == (2, 1, 1)
    assert cached(momento_server) == {"Tokyo": {"Location": "Tokyo", "MaxTemp": 25}}


def test_cli_dry_run_needs_no_momento_and_exits_0(queue, monkeypatch, momento_env, capsys):
    for name, value in momento_env.items():
        monkeypatch.setenv(name, value)
    queue.send(poison("r", insert("Tokyo", seq=1)))

    status = redrive_module.main(["--queue-url", queue.url, "--wait-seconds", "0", "--dry-run"])

    assert status == 0
    assert "would be" in capsys.readouterr().out
    assert len(queue.visible()) == 1
