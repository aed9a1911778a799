"""Publishing after the writes: one message per change, or packed topic messages, and what a failed pack costs.

The scheduling is driven with an in-memory gateway that records every call, as in test_executor.py; the SDK path of
packed messages runs end to end in test_app.py against the local Momento server.
"""

from __future__ import annotations

import asyncio
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processor.config import load_settings
from stream_processor.executor import execute_plan
from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.planner import ChangeRules, plan_batch, read_batch
from stream_processor.retries import Backoff, Deadline
from tests.stream_processor.records import insert, modify, remove

RULES = ChangeRules.from_settings(
    load_settings(
        {"CACHE_NAME": "c", "TOPIC_NAME": "t", "MOMENTO_LOCAL_ENDPOINT": "127.0.0.1:9", "TOPIC_PACKING": "on"}
    )
)
NO_WAIT = Backoff(base_seconds=0.0, cap_seconds=0.0)
RETRYABLE = CallFailure(FailureKind.RETRYABLE, "SERVER_UNAVAILABLE")
REFUSED = CallFailure(FailureKind.POISON, "INVALID_ARGUMENT_ERROR")


class TopicGateway:
    """Applies writes to a dict and records every topic message; ``fail_publish`` decides a publish's failure."""

    cache_call_seconds = 0.0
    publish_call_seconds = 0.0

    def __init__(self, fail_publish=lambda changes: None) -> None:
        self.cache: dict[str, bytes] = {}
        self.topic_messages: list[list[dict]] = []  # each topic message as the change messages it carries
        self.fail_publish = fail_publish
        self.sizes: list[int] = []  # bytes of every topic message offered
        self.in_flight = 0
        self.max_in_flight = 0

    async def set(self, key, value, ttl_ms):
        await asyncio.sleep(0)
        self.cache[key] = value

    async def delete(self, key):
        await asyncio.sleep(0)
        self.cache.pop(key, None)

    async def publish(self, message: bytes):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        self.sizes.append(len(message))
        decoded = json.loads(message)
        changes = decoded if isinstance(decoded, list) else [decoded]
        failure = self.fail_publish(changes)
        if failure is None:
            self.topic_messages.append(changes)
        return failure

    @property
    def published(self) -> list[dict]:
        return [change for message in self.topic_messages for change in message]


def run(records, gateway, *, packed_bytes=4096, max_in_flight=8):
    plan = plan_batch(read_batch(records, RULES), RULES, 1795000000.0)
    report = asyncio.run(
        execute_plan(
            plan,
            gateway,
            Deadline(lambda: 0, reply_margin_seconds=0.0),  # no time to retry: a failure is final
            max_in_flight=max_in_flight,
            packed_topic_bytes=packed_bytes,
            backoff=NO_WAIT,
            rng=random.Random(0),
        )
    )
    return plan, report


def history_records(history):
    build = {"INSERT": insert, "MODIFY": modify, "REMOVE": remove}
    return [
        build[event](key, seq=seq) if event == "REMOVE" else build[event](key, seq=seq, Version=str(seq))
        for seq, (key, event) in enumerate(history, start=1)
    ]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["INSERT", "MODIFY", "REMOVE"])), min_size=1, max_size=40
    ),
    st.sampled_from([600, 1200, 4096]),
    st.integers(1, 6),
)
def test_packed_messages_keep_each_keys_stream_order_and_carry_every_change_once(history, packed_bytes, in_flight):
    gateway = TopicGateway()

    _, report = run(history_records(history), gateway, packed_bytes=packed_bytes, max_in_flight=in_flight)

    assert report.failed_sequence_numbers == []
    for key in {k for k, _ in history}:
        published = [int(m["sequenceNumber"]) for m in gateway.published if m["key"] == key]
        assert published == [seq for seq, (k, _) in enumerate(history, start=1) if k == key]
    assert report.publishes == len(history)
    assert report.topic_messages == len(gateway.topic_messages) <= len(history)
    assert all(
        len(json.dumps(message, separators=(",", ":")).encode()) <= packed_bytes for message in gateway.topic_messages
    )


def test_about_a_dozen_changes_share_a_topic_message():
    gateway = TopicGateway()

    _, report = run([insert(f"city-{i:03d}", seq=i + 1, MaxTemp=i) for i in range(120)], gateway)

    assert report.publishes == 120
    assert len(gateway.topic_messages) <= 120 / 10
    assert gateway.max_in_flight > 1  # packs that share no key go out together


def test_a_failed_pack_reports_each_of_its_keys_earliest_change_and_holds_back_later_packs_of_those_keys():
    # Room for two change messages per topic message. A key's messages are packed together once its write lands:
    # [a1, a2], [a3, b4], [c5]. The first pack fails: the second holds "a" too, so it is held back whole and "b"
    # is reported with "a"; "c" shares no key with them and is published.
    records = [
        insert("a", seq=1, MaxTemp=1),
        modify("a", seq=2, MaxTemp=2),
        modify("a", seq=3, MaxTemp=3),
        insert("b", seq=4, MaxTemp=1),
        insert("c", seq=5, MaxTemp=1),
    ]
    largest = max(
        len(change.message)
        for plan in plan_batch(read_batch(records, RULES), RULES, 0).key_plans
        for change in plan.changes
    )
    gateway = TopicGateway(fail_publish=lambda changes: RETRYABLE if changes[0]["sequenceNumber"] == "1" else None)

    _, report = run(records, gateway, packed_bytes=2 * largest + 3, max_in_flight=1)

    assert [[m["sequenceNumber"] for m in message] for message in gateway.topic_messages] == [["5"]]
    assert sorted(report.failed_sequence_numbers, key=int) == ["1", "4"]
    assert report.exhausted_causes == {"SERVER_UNAVAILABLE": 2}
    assert set(gateway.cache) == {"a", "b", "c"}  # the writes landed; only the messages wait for Lambda's retry


def test_a_pack_the_topic_refuses_is_published_change_by_change_and_only_the_refused_one_is_poison():
    records = [insert("a", seq=1, MaxTemp=1), insert("b", seq=2, MaxTemp=1), insert("c", seq=3, MaxTemp=1)]
    refused_pack = lambda changes: REFUSED if len(changes) > 1 or changes[0]["key"] == "b" else None  # noqa: E731
    gateway = TopicGateway(fail_publish=refused_pack)

    _, report = run(records, gateway)

    assert [p.sequence_number for p in report.poison] == ["2"]
    assert [m["key"] for m in gateway.published] == ["a", "c"]
    assert report.failed_sequence_numbers == []
