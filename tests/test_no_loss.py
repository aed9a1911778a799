"""Proof that no change is lost: random histories and Momento fault schedules through the whole local pipeline.

Each example writes a random history to a moto table with a NEW_AND_OLD_IMAGES stream, in two parts, and after
each part drives the stream through the real handler with the event source mapping emulator (small batches,
bounded retries, ParallelizationFactor 1-10 with a drawn interleaving of its lanes, sometimes a filter on the key,
an on-failure SQS queue) while the local Momento server follows a random fault schedule:
transient failures throughout, and poison keys whose items are too large for the cache in the second part. When
the mapping is done, the faults are cleared and the redrive drains the dead-letter queue, as an operator would.
Then:

- the cache equals the table's final state for every key the filter lets through (an item whose TTL has passed
  counts as absent), and a
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
milliseconds. The Momento server decides each fault from its seed and the call's identity (method, key, attempt),
so an example replays with the same faults.

Runs: a fixed seed and 200 + 50 examples by default (CI). For a long local run, set the number of examples of
the main property (the fault-free one runs a quarter as many) and, to explore other examples, the seed; add
``--hypothesis-show-statistics`` to see which recovery paths the examples took::

    NO_LOSS_EXAMPLES=2000 NO_LOSS_SEED=7 .venv/bin/pytest tests/test_no_loss.py -q
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, given, seed, settings
from hypothesis import strategies as st

from local_pipeline.event_source_mapping import MappingReport, lambda_record, lane_of
from local_pipeline.momento_server import ERR_ITEM_SIZE
from stream_processor import app
from stream_processor.redrive import Redrive, RedriveOptions, RedriveSummary
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.histories import (
    TTL_ATTRIBUTE,
    FaultSchedule,
    Write,
    create_table,
    fault_schedules,
    histories,
    table_state,
    write_history,
)
from tests.pipeline import (
    PROPERTY_SETTINGS,
    MappingChoice,
    Pipeline,
    assert_first_deliveries_in_stream_order,
    assert_handler_always_answered,
    cache_contents,
    key_of,
    mapping_choices,
    peek_queue,
    pipeline,
    read_stream,
    sequence_number,
    unpublished,
)

__all__ = ["pipeline"]  # the module-scoped fixture, imported so pytest finds it here

EXAMPLES = int(os.environ.get("NO_LOSS_EXAMPLES", "200"))
SEED = int(os.environ.get("NO_LOSS_SEED", "20240611"))

# The suite's per-test timeout is sized for CI; a long local run (and shrinking a failure) needs more.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600 + 2 * EXAMPLES)]


# -- one run -----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything a run leaves behind, for the assertions."""

    mapping: MappingChoice
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

    def mirrored(self, by_key: dict[str, Any]) -> dict[str, Any]:
        """Only the keys the mapping's filter lets through (the others the stream processor never sees)."""
        return {key: value for key, value in by_key.items() if self.mapping.mirrors(key)}

    @property
    def mirrored_stream(self) -> list[dict[str, Any]]:
        return [record for record in self.stream if self.mapping.mirrors(key_of(record))]


async def _no_sleep(_seconds: float) -> None:
    return None


def run_pipeline(
    pipeline: Pipeline, writes: list[Write], schedule: FaultSchedule, choice: MappingChoice, split: int = 0
) -> Outcome:
    """Write the history, drive the stream through the handler under the faults, clear them, redrive; observe.

    The history runs in two parts, ``writes[:split]`` and the rest, each written and then delivered until the
    mapping has caught up. The transient faults apply throughout; poison keys refuse their writes only in the second
    part, as when an item grows too large for the cache after it was cached.
    """
    server = pipeline.server
    pipeline.reset(seed=len(writes))
    table = pipeline.table_name()
    stream_arn = create_table(pipeline.dynamodb, table)
    try:
        now = time.time()
        mapping = choice.mapping(stream_arn, pipeline)
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
            mapping=choice,
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
        pipeline.dynamodb.delete_table(TableName=table)


# -- what must hold ----------------------------------------------------------------------------------------------


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
    before = outcome.mirrored(outcome.cache_before_redrive)
    table = outcome.mirrored(outcome.table)
    assert {k: v for k, v in before.items() if k not in repaired} == {
        k: v for k, v in table.items() if k not in repaired
    }, "the stream processor left keys wrong without dead-lettering them"
    assert outcome.mirrored(outcome.cache) == table
    for key, item in table.items():
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
        # The stream processor publishes only what the filter lets through (the redrive re-reads whole ranges).
        assert message.get("redriven") or outcome.mapping.mirrors(message["key"]), f"filtered out: {message}"
    lost = unpublished(outcome.mirrored_stream, outcome.messages)
    assert not lost, f"changes never published: {lost}"
    redriven = {message["eventID"] for message in outcome.messages if message.get("redriven")}
    missing = [record["eventID"] for record in dead_lettered(outcome) if record["eventID"] not in redriven]
    assert not missing, f"dead-lettered changes the redrive did not publish: {missing}"


def expected_poison(outcome: Outcome, schedule: FaultSchedule, now: float) -> set[int]:
    """The records whose cache write met the item-size limit: in each invocation, a poison key's last live set."""
    factor = outcome.mapping.settings.parallelization_factor
    expected: set[int] = set()
    for invocation in outcome.reports[-1].invocation_log:
        first, last = int(invocation.first_sequence_number), int(invocation.last_sequence_number)
        batch = [
            record
            for record in outcome.mirrored_stream
            if first <= sequence_number(record) <= last and lane_of(record, factor) == invocation.lane
        ]
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
    deleted = {
        key_of(r)
        for r in outcome.later
        if key_of(r) in schedule.poison_keys and r["eventID"] not in discarded and outcome.mapping.mirrors(key_of(r))
    }
    assert not deleted & set(outcome.cache_before_redrive), "a poison key kept an older state"


def assert_redrive_emptied_the_queue(outcome: Outcome) -> None:
    assert outcome.redrive.kept == [], outcome.redrive.text()
    assert outcome.dead_letters_after_redrive == []
    on_failure = [body for body in outcome.dead_letters if "DDBStreamBatchInfo" in body]
    assert len(on_failure) == sum(report.failure_messages_sent for report in outcome.reports)


def describe(outcome: Outcome) -> None:
    """What the example exercised, for `--hypothesis-show-statistics`: which recovery paths ran."""
    kinds = sorted({"poison" if body.get("kind") == "poison-record" else "on-failure" for body in outcome.dead_letters})
    event(f"dead letters: {', '.join(kinds) or 'none'}")
    retried = sum(report.batches_retried for report in outcome.reports)
    event(f"retried batches: {retried if retried <= 3 else 'over 3'}")
    redriven = sum(1 for message in outcome.messages if message.get("redriven"))
    event(f"redriven messages: {'some' if redriven else 'none'}")
    event(f"ParallelizationFactor {'1' if outcome.mapping.settings.parallelization_factor == 1 else '2-10'}")
    event(f"filter: {'on the key' if outcome.mapping.mirrored is not None else 'none'}")


# -- the properties ----------------------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn, queue_url: str) -> tuple[list[Write], int, FaultSchedule, MappingChoice]:
    """A history, where it splits in two parts, a fault schedule and the mapping."""
    locations, writes = draw(histories())
    split = draw(st.integers(0, len(writes)))
    return writes, split, draw(fault_schedules(locations)), draw(mapping_choices(queue_url, locations))


@seed(SEED)
@settings(PROPERTY_SETTINGS, max_examples=EXAMPLES)
@given(data=st.data())
def test_no_change_is_lost_whatever_momento_does(pipeline: Pipeline, data: st.DataObject) -> None:
    writes, split, schedule, mapping = data.draw(scenarios(pipeline.queue_url), label="scenario")
    started = time.time()

    outcome = run_pipeline(pipeline, writes, schedule, mapping, split)
    describe(outcome)

    assert_handler_always_answered(outcome.handler_errors, outcome.reports)
    assert_poison_dead_lettered(outcome, schedule, started)
    assert_redrive_emptied_the_queue(outcome)
    assert_cache_equals_table(outcome)
    assert_every_change_published(outcome)
    assert_first_deliveries_in_stream_order(outcome.messages)


@seed(SEED)
@settings(PROPERTY_SETTINGS, max_examples=max(20, EXAMPLES // 4))
@given(data=st.data())
def test_without_faults_every_change_is_published_once_in_stream_order(pipeline: Pipeline, data: st.DataObject) -> None:
    locations, writes = data.draw(histories(), label="history")
    mapping = data.draw(mapping_choices(pipeline.queue_url, locations), label="mapping")
    split = data.draw(st.integers(0, len(writes)), label="split")

    outcome = run_pipeline(pipeline, writes, FaultSchedule((), ()), mapping, split)

    assert_handler_always_answered(outcome.handler_errors, outcome.reports)
    assert [(report.batches_retried, report.discarded) for report in outcome.reports] == [(0, [])] * 2
    assert outcome.dead_letters == []
    assert outcome.redrive.messages_read == 0
    assert_cache_equals_table(outcome)
    per_key: dict[str, list[str]] = defaultdict(list)
    for message in outcome.messages:
        per_key[message["key"]].append(message["eventID"])
    expected: dict[str, list[str]] = defaultdict(list)
    for record in outcome.mirrored_stream:
        expected[key_of(record)].append(record["eventID"])
    assert per_key == expected
