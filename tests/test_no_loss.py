"""Proof that no change is lost: random histories and Momento fault schedules through the whole local pipeline.

Each example writes a random history to a moto table with a NEW_AND_OLD_IMAGES stream, in two parts, and after
each part drives the stream through the real handler with the event source mapping emulator (small batches,
bounded retries, an on-failure SQS queue) while the local Momento server follows a random fault schedule:
transient failures throughout, and poison keys whose items are too large for the cache in the second part. When
the mapping is done, the faults are cleared and the redrive drains the dead-letter queue, as an operator would.
Then:

- the cache equals the table's final state for every key (an item whose TTL has passed counts as absent), and a
  cache entry never outlives its item's TTL; before the redrive, every key the DLQ does not name is already right;
- every change (every stream record's eventID) was published at least once, every dead-lettered change by the
  redrive (``"redriven": true``), and every message describes a change of the stream;
- the first delivery of each key's changes by the stream processor is in stream order (a redriven message comes
  after the later changes that flowed past its discarded batch, by design);
- exactly the records whose cache write met the item-size limit are in the DLQ as poison records with their full
  payload, their key is deleted rather than left stale, and the redrive (the fault gone) resyncs them and removes
  them, like every other message.

Time is virtual inside the handler: its backoff sleeps move the Lambda context's clock on instead of waiting, so
the handler's own retries end as they would within the function timeout, and an example takes tens of
milliseconds. The Momento server's fault draws come from a seeded generator but interleave across concurrent
keys, so a rare failure may not replay exactly; hypothesis then reports it as flaky, with the example.

Runs: a fixed seed and 200 + 50 examples by default (CI). For a long local run, set the number of examples of
the main property (the fault-free one runs a quarter as many) and, to explore other examples, the seed; add
``--hypothesis-show-statistics`` to see which recovery paths the examples took::

    NO_LOSS_EXAMPLES=2000 NO_LOSS_SEED=7 .venv/bin/pytest tests/test_no_loss.py -q
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from itertools import count
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, Phase, event, given, seed, settings
from hypothesis import strategies as st
from moto import mock_aws

from local_pipeline.event_source_mapping import (
    InvocationOutcome,
    MappingReport,
    MappingSettings,
    StreamEventSourceMapping,
    lambda_record,
)
from local_pipeline.lambda_context import LambdaContext
from local_pipeline.momento_server import ERR_ITEM_SIZE, LocalMomentoServer
from stream_processor import app, executor
from stream_processor.redrive import Redrive, RedriveOptions, RedriveSummary
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.histories import (
    KEY_ATTRIBUTE,
    TTL_ATTRIBUTE,
    FaultSchedule,
    Write,
    create_table,
    fault_schedules,
    histories,
    table_state,
    write_history,
)

EXAMPLES = int(os.environ.get("NO_LOSS_EXAMPLES", "200"))
SEED = int(os.environ.get("NO_LOSS_SEED", "20240611"))
MAX_IN_FLIGHT = 3  # below the number of keys in most examples: keys wait for a free slot, as in production

# The suite's per-test timeout is sized for CI; a long local run (and shrinking a failure) needs more.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600 + 2 * EXAMPLES)]

PROPERTY_SETTINGS = settings(
    deadline=None,  # the machine is shared: an example's duration says nothing about correctness
    database=None,  # a fixed seed, not replayed failures from an earlier run, decides what CI checks
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),  # no explain phase: it replays each failure many times
)


# -- virtual time ------------------------------------------------------------------------------------------------


class VirtualClock:
    """The Lambda clock of one run: starts at the real time and moves only when the handler sleeps to back off."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """A backoff on virtual time: the clock moves on at once, and other keys' tasks still get their turn."""
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Run:
    """The per-run parts of the patched container: the Lambda clock and a seeded jitter for the backoff."""

    clock: VirtualClock = field(default_factory=lambda: VirtualClock(time.time()))
    rng: random.Random = field(default_factory=lambda: random.Random(0))


# -- the pipeline: one container, one moto account, one DLQ for the whole module ---------------------------------


@dataclass
class Pipeline:
    """The module's container and AWS clients; each run gets its own table, and the server and queue are emptied."""

    server: LocalMomentoServer
    dynamodb: Any
    streams: Any
    sqs: Any
    queue_url: str
    run: Run
    tables: Iterator[int] = field(default_factory=count)
    handler_errors: list[str] = field(default_factory=list)

    def handler(self, event: dict[str, Any], context: LambdaContext) -> Any:
        try:
            return app.handler(event, context)
        except Exception as error:  # the handler must never raise for a record-level problem
            self.handler_errors.append(f"{type(error).__name__}: {error}")
            raise


@pytest.fixture(scope="module")
def pipeline(momento_server_session: LocalMomentoServer) -> Iterator[Pipeline]:
    run = Run()
    execute_plan = executor.execute_plan

    def execute_on_virtual_time(plan, gateway, deadline, *, max_in_flight):
        # Seeded jitter, and backoff sleeps that move the Lambda clock on instead of waiting.
        return execute_plan(
            plan, gateway, deadline, max_in_flight=max_in_flight, rng=run.rng, sleep=lambda s: run.clock.sleep(s)
        )

    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="stream-processor-dlq")["QueueUrl"]
        for name, value in {
            "MOMENTO_LOCAL_ENDPOINT": momento_server_session.endpoint,
            "CACHE_NAME": TEST_CACHE_NAME,
            "TOPIC_NAME": TEST_TOPIC_NAME,
            "DLQ_URL": queue_url,
            "TTL_ATTRIBUTE": TTL_ATTRIBUTE,
            "MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        }.items():
            patch.setenv(name, value)
        patch.setattr(app, "execute_plan", execute_on_virtual_time)
        app.processor.cache_clear()
        try:
            yield Pipeline(
                momento_server_session,
                boto3.client("dynamodb"),
                boto3.client("dynamodbstreams"),
                sqs,
                queue_url,
                run,
            )
        finally:
            app.processor().momento.close()
            app.processor.cache_clear()


# -- one run -----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything a run leaves behind, for the assertions."""

    stream: list[dict[str, Any]]  # the stream's records, as Lambda delivers them
    later: list[dict[str, Any]]  # the records of the history's second part (poison keys refuse their writes there)
    reports: list[MappingReport]  # one per part of the history
    handler_errors: list[str]
    dead_letters: list[dict[str, Any]]  # the DLQ's bodies after the mapping, before the redrive
    cache_before_redrive: dict[str, Any]
    redrive: RedriveSummary
    dead_letters_after_redrive: list[dict[str, Any]]
    cache: dict[str, Any]
    cache_ttls: dict[str, float | None]  # seconds each cache entry has left
    table: dict[str, Any]
    messages: list[dict[str, Any]]
    observed_at: float


async def _no_sleep(_seconds: float) -> None:
    return None


def run_pipeline(
    pipeline: Pipeline, writes: list[Write], schedule: FaultSchedule, mapping_settings: MappingSettings, split: int = 0
) -> Outcome:
    """Write the history, drive the stream through the handler under the faults, clear them, redrive; observe.

    The history runs in two parts, ``writes[:split]`` and the rest, each written and then delivered until the
    mapping has caught up. The transient faults apply throughout; poison keys refuse their writes only in the second
    part, as when an item grows too large for the cache after it was cached.
    """
    server = pipeline.server
    server.reset()
    server.create_cache(TEST_CACHE_NAME)
    pipeline.handler_errors.clear()
    table = f"weather-{next(pipeline.tables)}"
    stream_arn = create_table(pipeline.dynamodb, table)
    try:
        now = time.time()
        pipeline.run.clock = VirtualClock(now)
        pipeline.run.rng = random.Random(len(writes))
        mapping = StreamEventSourceMapping(stream_arn, pipeline.handler, mapping_settings, clock=pipeline.run.clock)
        reports = []
        earlier = 0
        for part, rules in ((writes[:split], []), (writes[split:], schedule.poison_rules)):
            earlier = len(read_stream(pipeline.streams, stream_arn))
            write_history(pipeline.dynamodb, table, part, now)
            server.clear_faults()
            server.add_faults([*rules, *schedule.transient_rules])  # poison first: its key's writes always meet it
            reports.append(mapping.run_until_caught_up())
            assert reports[-1].caught_up
        stream = [lambda_record(record, stream_arn) for record in read_stream(pipeline.streams, stream_arn)]

        # The operator's part: the cause is fixed, then the redrive drains the dead-letter queue.
        server.clear_faults()
        dead_letters = peek_queue(pipeline.sqs, pipeline.queue_url)
        cache_before_redrive = cache_contents(server)
        processor = app.processor()
        redrive = Redrive(
            processor.settings, processor.momento, sqs=pipeline.sqs, streams=pipeline.streams, sleep=_no_sleep
        )
        summary = redrive.run(RedriveOptions(queue_url=pipeline.queue_url, wait_seconds=0))

        cache = cache_contents(server)
        observed_at = time.time()
        return Outcome(
            stream=stream,
            later=stream[earlier:],
            reports=reports,
            handler_errors=list(pipeline.handler_errors),
            dead_letters=dead_letters,
            cache_before_redrive=cache_before_redrive,
            redrive=summary,
            dead_letters_after_redrive=peek_queue(pipeline.sqs, pipeline.queue_url),
            cache=cache,
            cache_ttls={key: server.ttl_remaining_seconds(TEST_CACHE_NAME, key) for key in cache},
            table=table_state(pipeline.dynamodb, table, observed_at),
            messages=[json.loads(message) for message in server.published(TEST_CACHE_NAME, TEST_TOPIC_NAME)],
            observed_at=observed_at,
        )
    finally:
        server.clear_faults()
        drain_queue(pipeline.sqs, pipeline.queue_url)
        pipeline.dynamodb.delete_table(TableName=table)


def cache_contents(server: LocalMomentoServer) -> dict[str, Any]:
    """The cache's live entries, values decoded with exact numbers."""
    decimal_json = partial(json.loads, parse_float=Decimal, parse_int=Decimal)
    return {key: decimal_json(value) for key, value in server.cache_items(TEST_CACHE_NAME).items()}


def read_stream(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the stream, in order (moto gives a table's stream one shard)."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def peek_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """The queue's message bodies, leaving every message in the queue and visible."""
    received = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages", []
    ):
        received.extend(messages)
    for start in range(0, len(received), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for index, message in enumerate(received[start : start + 10])
            ],
        )
    return [json.loads(message["Body"]) for message in received]


def drain_queue(sqs: Any, queue_url: str) -> None:
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# -- what must hold ----------------------------------------------------------------------------------------------


def key_of(record: dict[str, Any]) -> str:
    return record["dynamodb"]["Keys"][KEY_ATTRIBUTE]["S"]


def sequence_number(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def dead_lettered(outcome: Outcome, *, poison: bool = True) -> list[dict[str, Any]]:
    """The stream records the DLQ spoke about: poison records, and the records of every discarded range."""
    poisoned = {body["record"]["eventID"] for body in outcome.dead_letters if body.get("kind") == "poison-record"}
    ranges = [
        (int(info["startSequenceNumber"]), int(info["endSequenceNumber"]))
        for info in (body["DDBStreamBatchInfo"] for body in outcome.dead_letters if "DDBStreamBatchInfo" in body)
    ]
    return [
        record
        for record in outcome.stream
        if (poison and record["eventID"] in poisoned)
        or any(first <= sequence_number(record) <= last for first, last in ranges)
    ]


def assert_cache_equals_table(outcome: Outcome) -> None:
    # Before the redrive, every key the DLQ does not name must already be right: the redrive only repairs the others.
    repaired = {key_of(record) for record in dead_lettered(outcome)}
    assert {k: v for k, v in outcome.cache_before_redrive.items() if k not in repaired} == {
        k: v for k, v in outcome.table.items() if k not in repaired
    }, "the stream processor left keys wrong without dead-lettering them"
    assert outcome.cache == outcome.table
    for key, item in outcome.table.items():
        expires_at = item.get(TTL_ATTRIBUTE)
        remaining = outcome.cache_ttls[key]
        # The cache entry must not outlive the item: once DynamoDB's TTL passes, the item counts as gone.
        assert remaining is not None
        if expires_at is not None:
            assert remaining <= float(expires_at) - outcome.observed_at + 1, f"{key} outlives its TTL in the cache"


def assert_every_change_published(outcome: Outcome) -> None:
    by_event_id = {record["eventID"]: record for record in outcome.stream}
    for message in outcome.messages:
        record = by_event_id.get(message["eventID"])
        assert record is not None, f"a message for no change of the stream: {message}"
        assert (message["sequenceNumber"], message["key"], message["eventName"]) == (
            record["dynamodb"]["SequenceNumber"],
            key_of(record),
            record["eventName"],
        )
    published = {message["eventID"] for message in outcome.messages}
    lost = [
        (record["eventName"], key_of(record), record["dynamodb"]["SequenceNumber"])
        for record in outcome.stream
        if record["eventID"] not in published
    ]
    assert not lost, f"changes never published: {lost}"
    redriven = {message["eventID"] for message in outcome.messages if message.get("redriven")}
    missing = [record["eventID"] for record in dead_lettered(outcome) if record["eventID"] not in redriven]
    assert not missing, f"dead-lettered changes the redrive did not publish: {missing}"


def assert_first_deliveries_in_stream_order(outcome: Outcome) -> None:
    first_deliveries: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message in outcome.messages:
        if message.get("redriven") or message["eventID"] in seen:
            continue
        seen.add(message["eventID"])
        first_deliveries[message["key"]].append(int(message["sequenceNumber"]))
    for key, numbers in first_deliveries.items():
        assert numbers == sorted(numbers), f"{key}: first deliveries out of stream order: {numbers}"


def expected_poison(outcome: Outcome, schedule: FaultSchedule, now: float) -> set[int]:
    """The records whose cache write met the item-size limit: in each invocation, a poison key's last live set."""
    expected: set[int] = set()
    for invocation in outcome.reports[-1].invocation_log:
        first, last = int(invocation.first_sequence_number), int(invocation.last_sequence_number)
        batch = [record for record in outcome.stream if first <= sequence_number(record) <= last]
        writers = {key_of(record): record for record in batch}  # the last change of each key in the batch
        for key in schedule.poison_keys:
            writer = writers.get(key)
            if writer is None or writer["eventName"] == "REMOVE":
                continue
            expires_at = writer["dynamodb"]["NewImage"].get(TTL_ATTRIBUTE, {}).get("N")
            if expires_at is None or float(expires_at) > now:
                expected.add(sequence_number(writer))
    return expected


def assert_poison_dead_lettered(outcome: Outcome, schedule: FaultSchedule, now: float) -> None:
    by_sequence_number = {sequence_number(record): record for record in outcome.stream}
    poison = [body for body in outcome.dead_letters if body.get("kind") == "poison-record"]
    for body in poison:
        record = body["record"]
        assert record == by_sequence_number[sequence_number(record)], "the poison payload is not the record"
        assert key_of(record) in schedule.poison_keys
        assert ERR_ITEM_SIZE in body["reason"]
    assert {sequence_number(body["record"]) for body in poison} == expected_poison(outcome, schedule, now)
    # A poison key's item became too large: once a batch with its change succeeds, the key is deleted rather than
    # left holding a state the table has moved past (the redrive then sets it from the table).
    discarded = [record["eventID"] for record in dead_lettered(outcome, poison=False)]
    deleted = {key_of(r) for r in outcome.later if key_of(r) in schedule.poison_keys and r["eventID"] not in discarded}
    assert not deleted & set(outcome.cache_before_redrive), "a poison key kept an older state"


def assert_redrive_emptied_the_queue(outcome: Outcome) -> None:
    assert outcome.redrive.kept == [], outcome.redrive.text()
    assert outcome.dead_letters_after_redrive == []
    on_failure = [body for body in outcome.dead_letters if "DDBStreamBatchInfo" in body]
    assert len(on_failure) == sum(report.failure_messages_sent for report in outcome.reports)


def assert_handler_always_answered(outcome: Outcome) -> None:
    """No exception, no timeout, no malformed response: failures were only ever reported record by record."""
    assert outcome.handler_errors == []
    answered = {InvocationOutcome.SUCCESS, InvocationOutcome.PARTIAL_FAILURE}
    errors = [i.error for report in outcome.reports for i in report.invocation_log if i.outcome not in answered]
    assert errors == []


def describe(outcome: Outcome) -> None:
    """What the example exercised, for `--hypothesis-show-statistics`: which recovery paths ran."""
    kinds = sorted({"poison" if body.get("kind") == "poison-record" else "on-failure" for body in outcome.dead_letters})
    event(f"dead letters: {', '.join(kinds) or 'none'}")
    retried = sum(report.batches_retried for report in outcome.reports)
    event(f"retried batches: {retried if retried <= 3 else 'over 3'}")
    redriven = sum(1 for message in outcome.messages if message.get("redriven"))
    event(f"redriven messages: {'some' if redriven else 'none'}")


# -- the properties ----------------------------------------------------------------------------------------------


@st.composite
def mapping_settings(draw: st.DrawFn, queue_url: str) -> MappingSettings:
    return MappingSettings(
        batch_size=draw(st.integers(1, 6)),
        maximum_retry_attempts=draw(st.integers(0, 3)),
        bisect_batch_on_function_error=draw(st.booleans()),
        # 2 s leaves no time to retry a publish (5 s worst case), 10 s leaves a few; cache calls get more.
        function_timeout_seconds=draw(st.sampled_from([2, 2, 6, 10])),
        on_failure_queue_url=queue_url,
    )


@st.composite
def scenarios(draw: st.DrawFn, queue_url: str) -> tuple[list[Write], int, FaultSchedule, MappingSettings]:
    """A history, where it splits in two parts, a fault schedule and the mapping's settings."""
    locations, writes = draw(histories())
    split = draw(st.integers(0, len(writes)))
    return writes, split, draw(fault_schedules(locations)), draw(mapping_settings(queue_url))


@seed(SEED)
@settings(PROPERTY_SETTINGS, max_examples=EXAMPLES)
@given(data=st.data())
def test_no_change_is_lost_whatever_momento_does(pipeline: Pipeline, data: st.DataObject) -> None:
    writes, split, schedule, mapping = data.draw(scenarios(pipeline.queue_url), label="scenario")
    started = time.time()

    outcome = run_pipeline(pipeline, writes, schedule, mapping, split)
    describe(outcome)

    assert_handler_always_answered(outcome)
    assert_poison_dead_lettered(outcome, schedule, started)
    assert_redrive_emptied_the_queue(outcome)
    assert_cache_equals_table(outcome)
    assert_every_change_published(outcome)
    assert_first_deliveries_in_stream_order(outcome)


@seed(SEED)
@settings(PROPERTY_SETTINGS, max_examples=max(20, EXAMPLES // 4))
@given(data=st.data())
def test_without_faults_every_change_is_published_once_in_stream_order(pipeline: Pipeline, data: st.DataObject) -> None:
    _, writes = data.draw(histories(), label="history")
    mapping = data.draw(mapping_settings(pipeline.queue_url), label="mapping")
    split = data.draw(st.integers(0, len(writes)), label="split")

    outcome = run_pipeline(pipeline, writes, FaultSchedule((), ()), mapping, split)

    assert_handler_always_answered(outcome)
    assert [(report.batches_retried, report.discarded) for report in outcome.reports] == [(0, [])] * 2
    assert outcome.dead_letters == []
    assert outcome.redrive.messages_read == 0
    assert_cache_equals_table(outcome)
    per_key: dict[str, list[str]] = defaultdict(list)
    for message in outcome.messages:
        per_key[message["key"]].append(message["eventID"])
    expected: dict[str, list[str]] = defaultdict(list)
    for record in outcome.stream:
        expected[key_of(record)].append(record["eventID"])
    assert per_key == expected
