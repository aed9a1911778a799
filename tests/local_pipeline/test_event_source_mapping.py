"""The event source mapping emulator follows each documented rule of Lambda's DynamoDB Streams mapping."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamLambdaOnFailureDestinationModel,
    DynamoDBStreamModel,
)

from local_pipeline.event_source_mapping import (
    FailureCondition,
    InvocationOutcome,
    MappingSettings,
    StreamEventSourceMapping,
    lambda_record,
)
from local_pipeline.lambda_context import LambdaContext
from tests.local_pipeline.mapping_support import (
    REGION,
    STUB_ARN,
    FakeClock,
    Recorder,
    StubShard,
    StubStreams,
    Table,
    dlq_messages,
    failures,
    key_of,
    sequence_of,
    settings,
    stream_sequence_numbers,
)

OUTCOME = InvocationOutcome


# Event shape


def test_events_have_exactly_lambdas_shape(table: Table) -> None:
    table.put("k00", blob=b"\x00\x01", amount=5)
    table.put("k00", blob=b"\x00\x01", amount=6)
    table.delete("k00")
    recorder = Recorder()

    StreamEventSourceMapping(table.stream_arn, recorder).run_until_caught_up()

    (event,) = recorder.events
    DynamoDBStreamModel.model_validate(event)
    insert, modify, remove = event["Records"]
    assert [r["eventName"] for r in event["Records"]] == ["INSERT", "MODIFY", "REMOVE"]
    for record in event["Records"]:
        assert set(record) == {
            "eventID",
            "eventName",
            "eventVersion",
            "eventSource",
            "awsRegion",
            "dynamodb",
            "eventSourceARN",
        }
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == REGION
        assert record["eventSourceARN"] == table.stream_arn
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float)
    common = {"ApproximateCreationDateTime", "Keys", "SequenceNumber", "SizeBytes", "StreamViewType"}
    assert set(insert["dynamodb"]) == common | {"NewImage"}
    assert set(modify["dynamodb"]) == common | {"NewImage", "OldImage"}
    assert set(remove["dynamodb"]) == common | {"OldImage"}
    # Binary attributes travel as base64 text, numbers as strings, as in Lambda's JSON event.
    assert insert["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert modify["dynamodb"]["NewImage"]["amount"] == {"N": "6"}
    assert modify["dynamodb"]["OldImage"]["amount"] == {"N": "5"}


def test_creation_time_becomes_the_streams_epoch_seconds(table: Table) -> None:
    table.put("k00")
    streams = boto3.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=table.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=table.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    (raw,) = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]

    converted = lambda_record(raw, table.stream_arn)

    assert (
        converted["dynamodb"]["ApproximateCreationDateTime"]
        == raw["dynamodb"]["ApproximateCreationDateTime"].timestamp()
    )
    assert converted["eventID"] == raw["eventID"]
    assert converted["dynamodb"]["SequenceNumber"] == raw["dynamodb"]["SequenceNumber"]


def test_ttl_deletion_identity_is_renamed_to_lambdas_spelling() -> None:
    raw = StubStreams._record("shard", "100", 1_700_000_000.0)
    raw.update(eventName="REMOVE", userIdentity={"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"})

    converted = lambda_record(raw, STUB_ARN)

    assert converted["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert converted["dynamodb"]["ApproximateCreationDateTime"] == 1_700_000_000.0


def test_handler_gets_its_own_copy_of_the_event(table: Table) -> None:
    table.put_many(2)

    def respond(event: dict[str, Any], call: int) -> None:
        if call == 1:
            for record in event["Records"]:
                record["dynamodb"].clear()
            raise RuntimeError("mangled the event, then failed")

    recorder = Recorder(respond)
    StreamEventSourceMapping(
        table.stream_arn, recorder, settings(bisect_batch_on_function_error=False)
    ).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01"], ["k00", "k01"]]


def test_works_with_a_powertools_batch_processor_handler(table: Table) -> None:
    keys = table.put_many(4)
    attempts: dict[str, int] = {}
    processed: list[str] = []

    def record_handler(record: DynamoDBRecord) -> None:
        key = record.dynamodb.keys["pk"]
        attempts[key] = attempts.get(key, 0) + 1
        if key == "k02" and attempts[key] == 1:
            raise ValueError("first attempt fails")
        processed.append(key)

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    report = StreamEventSourceMapping(table.stream_arn, handler).run_until_caught_up()

    assert [i.outcome for i in report.invocation_log] == [OUTCOME.PARTIAL_FAILURE, OUTCOME.SUCCESS]
    # Powertools reports only k02, but Lambda retries every record from the lowest reported one.
    assert processed == ["k00", "k01", "k03", "k02", "k03"]
    assert report.checkpoints == {report.invocation_log[0].shard_id: report.invocation_log[-1].last_sequence_number}
    assert not report.discarded
    assert set(attempts) == set(keys)


# Batching, checkpoints, order


def test_batch_size_splits_the_stream_in_order_and_checkpoints_the_last_record(table: Table) -> None:
    keys = table.put_many(7)
    recorder = Recorder()

    report = StreamEventSourceMapping(table.stream_arn, recorder, settings(batch_size=3)).run_until_caught_up()

    assert recorder.batches() == [keys[0:3], keys[3:6], keys[6:7]]
    assert report.invocations == 3
    assert report.records_delivered == 7
    assert all(i.outcome is OUTCOME.SUCCESS for i in report.invocation_log)
    (checkpoint,) = report.checkpoints.values()
    assert checkpoint == stream_sequence_numbers(table)["k06"]
    assert report.caught_up


def test_a_later_run_delivers_only_new_records(table: Table) -> None:
    table.put_many(2)
    recorder = Recorder()
    mapping = StreamEventSourceMapping(table.stream_arn, recorder)
    mapping.run_until_caught_up()

    table.put("k99")
    report = mapping.run_until_caught_up()

    assert recorder.batches() == [["k00", "k01"], ["k99"]]
    assert report.invocations == 1
    assert mapping.run_until_caught_up().invocations == 0


def test_latest_starting_position_skips_records_written_before_the_mapping(table: Table) -> None:
    table.put("before")
    recorder = Recorder()
    mapping = StreamEventSourceMapping(table.stream_arn, recorder, settings(starting_position="LATEST"))
    table.put("after")

    mapping.run_until_caught_up()

    assert recorder.batches() == [["after"]]


@pytest.mark.parametrize(
    "response",
    [None, {}, [], "", {"batchItemFailures": []}, {"batchItemFailures": None}, {"statusCode": 200}],
    ids=["none", "empty-object", "empty-array", "empty-string", "empty-list", "null-list", "no-batchItemFailures"],
)
def test_responses_without_reported_failures_are_a_complete_success(table: Table, response: Any) -> None:
    table.put_many(3)
    recorder = Recorder(lambda event, call: response)

    report = StreamEventSourceMapping(table.stream_arn, recorder).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01", "k02"]]
    assert list(report.checkpoints.values()) == [stream_sequence_numbers(table)["k02"]]


# Partial batch responses


def test_partial_failure_checkpoints_before_the_lowest_reported_record_and_retries_from_it(table: Table) -> None:
    table.put_many(5)

    def respond(event: dict[str, Any], call: int) -> Any:
        # The higher one first: the mapping must pick the lowest, not the first listed.
        return failures(sequence_of(event, "k03"), sequence_of(event, "k01")) if call == 1 else None

    recorder = Recorder(respond)
    mapping = StreamEventSourceMapping(table.stream_arn, recorder, settings(bisect_batch_on_function_error=False))
    first = mapping.poll_once()

    assert list(first.checkpoints.values()) == [stream_sequence_numbers(table)["k00"]]
    assert first.batches_retried == 1
    mapping.run_until_caught_up()
    assert recorder.batches() == [["k00", "k01", "k02", "k03", "k04"], ["k01", "k02", "k03", "k04"]]
    assert list(mapping.checkpoints.values()) == [stream_sequence_numbers(table)["k04"]]


def test_lowest_reported_sequence_number_is_compared_as_an_integer() -> None:
    stub = StubStreams(StubShard("shard-1", None, [("9", 1.0), ("10", 2.0), ("11", 3.0)]))

    def respond(event: dict[str, Any], call: int) -> Any:
        return failures("10", "9") if call == 1 else None  # as text, "10" < "9"

    recorder = Recorder(respond)
    StreamEventSourceMapping(STUB_ARN, recorder, streams_client=stub, clock=FakeClock(10.0)).run_until_caught_up()

    assert recorder.batches() == [["9", "10", "11"], ["9", "10", "11"]]


@pytest.mark.parametrize(
    "bad_response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"sequenceNumber": "1"}]},
        {"batchItemFailures": [{"itemIdentifier": "123"}]},
        {"batchItemFailures": "k01"},
        ["not", "an", "object"],
        "ok",
        0,
    ],
    ids=[
        "empty-identifier",
        "null-identifier",
        "bad-key-name",
        "not-in-batch",
        "not-a-list",
        "array-not-an-object",
        "string-not-an-object",
        "number-not-an-object",
    ],
)
def test_malformed_partial_response_fails_the_whole_batch(table: Table, bad_response: Any) -> None:
    table.put_many(3)
    recorder = Recorder(lambda event, call: bad_response if call == 1 else None)

    report = StreamEventSourceMapping(
        table.stream_arn, recorder, settings(bisect_batch_on_function_error=False)
    ).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01", "k02"], ["k00", "k01", "k02"]]
    assert [i.outcome for i in report.invocation_log] == [OUTCOME.INVALID_RESPONSE, OUTCOME.SUCCESS]


def test_partial_response_is_ignored_without_report_batch_item_failures(table: Table) -> None:
    table.put_many(3)
    recorder = Recorder(lambda event, call: failures(sequence_of(event, "k01")))

    report = StreamEventSourceMapping(
        table.stream_arn, recorder, settings(report_batch_item_failures=False)
    ).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01", "k02"]]
    assert list(report.checkpoints.values()) == [stream_sequence_numbers(table)["k02"]]


@pytest.mark.parametrize(("bisect", "invocations"), [(False, 2), (True, 3)])
def test_split_at_the_reported_record_consumes_no_retry_only_with_bisection(
    table: Table, dlq: str, bisect: bool, invocations: int
) -> None:
    table.put_many(4)
    recorder = Recorder(lambda event, call: failures(sequence_of(event, "k02")))
    config = settings(bisect_batch_on_function_error=bisect, maximum_retry_attempts=1, on_failure_queue_url=dlq)

    report = StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01", "k02", "k03"]] + [["k02", "k03"]] * (invocations - 1)
    (message,) = dlq_messages(dlq)
    assert message["requestContext"]["approximateInvokeCount"] == invocations
    assert message["DDBStreamBatchInfo"]["batchSize"] == 2
    assert message["responseContext"]["functionError"] is None
    assert report.records_discarded == 2


@pytest.mark.parametrize(("failing_times", "discarded"), [(0, False), (1, False), (2, False), (3, True)])
def test_a_record_failing_up_to_the_retry_limit_is_still_delivered(
    table: Table, dlq: str, failing_times: int, discarded: bool
) -> None:
    table.put_many(3)
    attempts = {"k01": 0}

    def respond(event: dict[str, Any], call: int) -> Any:
        if "k01" in [key_of(r) for r in event["Records"]]:
            attempts["k01"] += 1
            if attempts["k01"] <= failing_times:
                return failures(sequence_of(event, "k01"))
        return None

    recorder = Recorder(respond)
    config = settings(maximum_retry_attempts=2, bisect_batch_on_function_error=False, on_failure_queue_url=dlq)

    report = StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    assert len(dlq_messages(dlq)) == int(discarded)
    assert report.invocation_log[-1].outcome is (OUTCOME.PARTIAL_FAILURE if discarded else OUTCOME.SUCCESS)
    assert attempts["k01"] == min(failing_times + 1, 3)


# Function errors, bisection, retries


def test_handler_exception_fails_and_retries_the_whole_batch(table: Table) -> None:
    table.put_many(2)

    def respond(event: dict[str, Any], call: int) -> Any:
        if call == 1:
            raise RuntimeError("downstream unavailable")
        return failures()

    recorder = Recorder(respond)
    report = StreamEventSourceMapping(
        table.stream_arn, recorder, settings(bisect_batch_on_function_error=False)
    ).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01"], ["k00", "k01"]]
    assert [i.outcome for i in report.invocation_log] == [OUTCOME.FUNCTION_ERROR, OUTCOME.SUCCESS]
    assert report.invocation_log[0].error == "RuntimeError: downstream unavailable"
    assert report.batches_retried == 1


def test_unserialisable_response_is_a_function_error(table: Table) -> None:
    table.put_many(1)
    recorder = Recorder(lambda event, call: {"batchItemFailures": [], "extra": {1, 2}} if call == 1 else None)

    report = StreamEventSourceMapping(table.stream_arn, recorder).run_until_caught_up()

    assert [i.outcome for i in report.invocation_log] == [OUTCOME.FUNCTION_ERROR, OUTCOME.SUCCESS]
    assert "Runtime.MarshalError" in (report.invocation_log[0].error or "")


def test_bisection_isolates_a_poison_record_without_consuming_retries(table: Table, dlq: str) -> None:
    table.put_many(4)

    def respond(event: dict[str, Any], call: int) -> Any:
        if "k02" in [key_of(r) for r in event["Records"]]:
            raise ValueError("poison record")

    recorder = Recorder(respond)
    config = settings(batch_size=4, maximum_retry_attempts=1, on_failure_queue_url=dlq)

    report = StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    # Halves are retried in order; the single poison record then gets its one retry, as if never split.
    assert recorder.batches() == [
        ["k00", "k01", "k02", "k03"],
        ["k00", "k01"],
        ["k02", "k03"],
        ["k02"],
        ["k02"],
        ["k03"],
    ]
    assert report.bisections == 2
    assert report.batches_retried == 1
    (message,) = dlq_messages(dlq)
    sequence_numbers = stream_sequence_numbers(table)
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sequence_numbers["k02"],
        sequence_numbers["k02"],
        1,
    )
    assert message["requestContext"]["approximateInvokeCount"] == 4
    assert list(report.checkpoints.values()) == [sequence_numbers["k03"]]


def test_exhausted_retries_send_lambdas_on_failure_record_and_later_records_still_flow(table: Table, dlq: str) -> None:
    table.put_many(4)
    clock = FakeClock(time.time())

    def respond(event: dict[str, Any], call: int) -> Any:
        if "k01" in [key_of(r) for r in event["Records"]]:
            raise RuntimeError("cannot process k01")

    recorder = Recorder(respond)
    config = settings(
        batch_size=2, maximum_retry_attempts=2, bisect_batch_on_function_error=False, on_failure_queue_url=dlq
    )

    report = StreamEventSourceMapping(table.stream_arn, recorder, config, clock=clock).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01"]] * 3 + [["k02", "k03"]]
    (message,) = dlq_messages(dlq)
    DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(message)
    assert set(message) == {"requestContext", "responseContext", "version", "timestamp", "DDBStreamBatchInfo"}
    assert message["requestContext"] == {
        "requestId": recorder.contexts[2].aws_request_id,
        "functionArn": config.function_arn,
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 3,
    }
    assert message["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert message["version"] == "1.0"
    assert message["timestamp"] == datetime.fromtimestamp(clock.now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    shard_id = report.invocation_log[0].shard_id
    sequence_numbers = stream_sequence_numbers(table)
    info = message["DDBStreamBatchInfo"]
    assert {key: info[key] for key in ("shardId", "startSequenceNumber", "endSequenceNumber", "batchSize")} == {
        "shardId": shard_id,
        "startSequenceNumber": sequence_numbers["k00"],
        "endSequenceNumber": sequence_numbers["k01"],
        "batchSize": 2,
    }
    assert info["streamArn"] == table.stream_arn
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["approximateArrivalOfFirstRecord"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["approximateArrivalOfLastRecord"])
    # The message is a pointer: the discarded records can be read back from the stream with it.
    streams = boto3.client("dynamodbstreams")
    iterator = streams.get_shard_iterator(
        StreamArn=info["streamArn"],
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    reread = streams.get_records(ShardIterator=iterator, Limit=info["batchSize"])["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in reread] == ["k00", "k01"]
    assert report.records_discarded == 2
    assert report.failure_messages_sent == 1
    assert report.records_sent_to_on_failure_destination == 2
    assert list(report.checkpoints.values()) == [sequence_numbers["k03"]]


def test_without_a_destination_exhausted_records_are_skipped(table: Table) -> None:
    table.put_many(2)

    def respond(event: dict[str, Any], call: int) -> Any:
        raise RuntimeError("always")

    report = StreamEventSourceMapping(
        table.stream_arn, Recorder(respond), settings(maximum_retry_attempts=0, bisect_batch_on_function_error=False)
    ).run_until_caught_up()

    assert report.invocations == 1
    assert report.records_discarded == 2
    assert report.failure_messages_sent == 0
    assert report.records_sent_to_on_failure_destination == 0
    assert report.discarded[0].condition is FailureCondition.RETRY_ATTEMPTS_EXHAUSTED
    assert list(report.checkpoints.values()) == [stream_sequence_numbers(table)["k01"]]


def test_order_per_shard_survives_retries(table: Table) -> None:
    keys = table.put_many(10)
    failures_left = {"k01": 2, "k04": 1, "k05": 2, "k08": 1}
    applied: list[str] = []
    applied_before: list[int] = []

    def respond(event: dict[str, Any], call: int) -> Any:
        applied_before.append(len(applied))
        batch = [key_of(r) for r in event["Records"]]
        failed = [key for key in batch if failures_left.get(key, 0) > 0]
        for key in failed:
            failures_left[key] -= 1
        first_failed = batch.index(failed[0]) if failed else len(batch)
        applied.extend(batch[:first_failed])
        return failures(*(sequence_of(event, key) for key in failed))

    recorder = Recorder(respond)
    report = StreamEventSourceMapping(
        table.stream_arn, recorder, settings(batch_size=3, maximum_retry_attempts=2)
    ).run_until_caught_up()

    assert applied == keys
    # Every invocation carries consecutive records starting right after what is already done.
    for batch, start in zip(recorder.batches(), applied_before, strict=True):
        assert batch == keys[start : start + len(batch)]
    assert report.invocations > 4
    assert not report.discarded


def test_unlimited_retries_are_bounded_by_max_invocations_and_resume(table: Table) -> None:
    table.put_many(2)
    healthy = {"now": False}

    def respond(event: dict[str, Any], call: int) -> Any:
        if not healthy["now"]:
            raise RuntimeError("down")

    recorder = Recorder(respond)
    mapping = StreamEventSourceMapping(
        table.stream_arn, recorder, settings(maximum_retry_attempts=-1, bisect_batch_on_function_error=False)
    )

    stuck = mapping.run_until_caught_up(max_invocations=5)
    assert (stuck.invocations, stuck.caught_up, stuck.records_discarded) == (5, False, 0)
    assert list(stuck.checkpoints.values()) == [None]

    healthy["now"] = True
    resumed = mapping.run_until_caught_up(max_invocations=5)
    assert (resumed.invocations, resumed.caught_up) == (1, True)
    assert recorder.batches() == [["k00", "k01"]] * 6


# Time: record age, timeout, context


def test_records_older_than_the_maximum_age_are_not_delivered(table: Table, dlq: str) -> None:
    table.put_many(3)
    clock = FakeClock(time.time() + 61)
    recorder = Recorder()
    config = settings(maximum_record_age_seconds=60, on_failure_queue_url=dlq)

    report = StreamEventSourceMapping(table.stream_arn, recorder, config, clock=clock).run_until_caught_up()

    assert recorder.events == []
    (message,) = dlq_messages(dlq)
    DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(message)
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["requestContext"]["approximateInvokeCount"] == 0
    assert message["DDBStreamBatchInfo"]["batchSize"] == 3
    assert report.discarded[0].condition is FailureCondition.RECORD_AGE_EXCEEDED
    assert list(report.checkpoints.values()) == [stream_sequence_numbers(table)["k02"]]


def test_records_that_age_out_while_retried_go_to_the_destination(table: Table, dlq: str) -> None:
    table.put_many(2)
    clock = FakeClock(time.time())

    def respond(event: dict[str, Any], call: int) -> Any:
        clock.advance(61)
        raise RuntimeError("slow failure")

    recorder = Recorder(respond)
    config = settings(
        maximum_record_age_seconds=60,
        maximum_retry_attempts=5,
        function_timeout_seconds=120,
        bisect_batch_on_function_error=False,
        on_failure_queue_url=dlq,
    )

    StreamEventSourceMapping(table.stream_arn, recorder, config, clock=clock).run_until_caught_up()

    assert recorder.batches() == [["k00", "k01"]]
    (message,) = dlq_messages(dlq)
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["requestContext"]["approximateInvokeCount"] == 1
    assert message["requestContext"]["requestId"] == recorder.contexts[0].aws_request_id
    assert message["responseContext"]["functionError"] == "Unhandled"


def test_only_the_records_too_old_are_discarded() -> None:
    stub = StubStreams(StubShard("shard-1", None, [("100", 1000.0), ("200", 1100.0), ("300", 1200.0)]))
    recorder = Recorder()
    config = settings(maximum_record_age_seconds=60)

    report = StreamEventSourceMapping(
        STUB_ARN, recorder, config, streams_client=stub, clock=FakeClock(1190.0)
    ).run_until_caught_up()

    assert recorder.batches() == [["300"]]
    (discarded,) = report.discarded
    assert (discarded.first_sequence_number, discarded.last_sequence_number, discarded.sent) == ("100", "200", False)
    info = discarded.message["DDBStreamBatchInfo"]
    assert info["approximateArrivalOfFirstRecord"] == "1970-01-01T00:16:40Z"
    assert info["approximateArrivalOfLastRecord"] == "1970-01-01T00:18:20Z"


def test_running_past_the_timeout_fails_the_batch(table: Table) -> None:
    table.put_many(2)
    clock = FakeClock(time.time())
    remaining: list[int] = []

    def respond(event: dict[str, Any], call: int) -> Any:
        context = recorder.contexts[-1]
        remaining.append(context.get_remaining_time_in_millis())
        clock.advance(1)
        remaining.append(context.get_remaining_time_in_millis())
        if call == 1:
            clock.advance(5)  # well past the 3 s timeout
            remaining.append(context.get_remaining_time_in_millis())
        return None

    recorder = Recorder(respond)
    config = settings(function_timeout_seconds=3, bisect_batch_on_function_error=False)

    report = StreamEventSourceMapping(table.stream_arn, recorder, config, clock=clock).run_until_caught_up()

    assert [i.outcome for i in report.invocation_log] == [OUTCOME.TIMEOUT, OUTCOME.SUCCESS]
    assert report.invocation_log[0].error == "Task timed out after 3 seconds"
    assert recorder.batches() == [["k00", "k01"], ["k00", "k01"]]
    assert remaining == [3000, 2000, 0, 3000, 2000]


def test_context_describes_the_function_like_the_python_runtime(table: Table) -> None:
    table.put_many(2)

    def respond(event: dict[str, Any], call: int) -> Any:
        if call == 1:
            raise RuntimeError("first invocation fails")

    recorder = Recorder(respond)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:orders-to-momento"
    config = settings(function_arn=arn, memory_size_mb=512, bisect_batch_on_function_error=False)

    StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    first, second = recorder.contexts
    assert first.function_name == "orders-to-momento"
    assert first.invoked_function_arn == arn
    assert first.function_version == "$LATEST"
    assert first.memory_limit_in_mb == "512"
    assert first.log_group_name == "/aws/lambda/orders-to-momento"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", first.log_stream_name)
    assert first.log_stream_name == second.log_stream_name
    assert first.aws_request_id != second.aws_request_id
    assert first.client_context is None
    assert first.identity.cognito_identity_id is None


# Shards


def test_a_child_shard_is_read_after_its_parent_is_finished() -> None:
    stub = StubStreams(
        StubShard("shard-child", "shard-parent", [("300", 3.0), ("400", 4.0)]),
        StubShard("shard-parent", None, [("100", 1.0), ("200", 2.0)], closed=True),
        StubShard("shard-orphan", "shard-trimmed", [("50", 0.5)]),
    )
    recorder = Recorder()

    report = StreamEventSourceMapping(
        STUB_ARN, recorder, settings(batch_size=1), streams_client=stub, clock=FakeClock(10.0)
    ).run_until_caught_up()

    delivered = [key for keys in recorder.batches() for key in keys]
    assert sorted(delivered, key=int) == ["50", "100", "200", "300", "400"]
    assert delivered.index("200") < delivered.index("300") < delivered.index("400")
    assert delivered.index("50") < delivered.index("200")  # a shard whose parent has left the stream is not held
    assert report.checkpoints == {"shard-child": "400", "shard-parent": "200", "shard-orphan": "50"}


# Settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("batch_size", 0),
        ("batch_size", 10_001),
        ("batch_size", True),
        ("maximum_retry_attempts", -2),
        ("maximum_retry_attempts", 10_001),
        ("maximum_record_age_seconds", 0),
        ("maximum_record_age_seconds", 59),
        ("maximum_record_age_seconds", 604_801),
        ("function_timeout_seconds", 0),
        ("function_timeout_seconds", 901),
        ("memory_size_mb", 64),
        ("starting_position", "AT_TIMESTAMP"),
        ("function_arn", "arn:aws:sqs:us-east-1:123456789012:queue"),
        ("parallelization_factor", 0),
        ("parallelization_factor", 11),
    ],
)
def test_settings_outside_lambdas_ranges_are_rejected_by_name(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        MappingSettings(**{name: value})


def test_settings_accept_lambdas_boundaries() -> None:
    for overrides in (
        {"batch_size": 1, "maximum_retry_attempts": -1, "maximum_record_age_seconds": -1, "parallelization_factor": 1},
        {
            "batch_size": 10_000,
            "maximum_retry_attempts": 10_000,
            "maximum_record_age_seconds": 604_800,
            "parallelization_factor": 10,
        },
        {"maximum_retry_attempts": 0, "maximum_record_age_seconds": 60, "starting_position": "LATEST"},
    ):
        assert MappingSettings(**overrides)
