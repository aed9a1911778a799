"""The executor's scheduling: per-key order, concurrency across keys, the in-flight bound, retries and failure rules.

These drive ``execute_plan`` with an in-memory gateway that records every call, because what is under test is the
executor's own scheduling; the SDK path is covered end to end in test_app.py against the local Momento server.
"""

from __future__ import annotations

import asyncio
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
    load_settings({"CACHE_NAME": "c", "TOPIC_NAME": "t", "MOMENTO_LOCAL_ENDPOINT": "127.0.0.1:9"})
)
NO_WAIT = Backoff(base_seconds=0.0, cap_seconds=0.0)


class RecordingGateway:
    """Applies calls to a dict and a message list, with scripted failures and a tick of latency per call."""

    cache_call_seconds = 0.0
    publish_call_seconds = 0.0

    def __init__(self, failures: dict[tuple[str, str], list[CallFailure]] | None = None) -> None:
        self.cache: dict[str, bytes] = {}
        self.published: list[dict] = []
        self.log: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.failures = failures or {}

    async def _call(self, method: str, key: str) -> CallFailure | None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0)  # let other keys interleave
        self.in_flight -= 1
        scripted = self.failures.get((method, key))
        if scripted:
            return scripted.pop(0)
        self.log.append((method, key))
        return None

    async def set(self, key, value, ttl_ms):
        failure = await self._call("set", key)
        if failure is None:
            self.cache[key] = value
        return failure

    async def delete(self, key):
        failure = await self._call("delete", key)
        if failure is None:
            self.cache.pop(key, None)
        return failure

    async def publish(self, message):
        import json

        decoded = json.loads(message)
        failure = await self._call("publish", decoded["key"])
        if failure is None:
            self.published.append(decoded)
        return failure


def run(records, gateway, *, max_in_flight=64, remaining_ms=60_000):
    plan = plan_batch(read_batch(records, RULES), RULES, 1795000000.0)
    deadline = Deadline(lambda: remaining_ms, reply_margin_seconds=0.0)
    report = asyncio.run(
        execute_plan(plan, gateway, deadline, max_in_flight=max_in_flight, backoff=NO_WAIT, rng=random.Random(0))
    )
    return plan, report


RETRYABLE = CallFailure(FailureKind.RETRYABLE, "SERVER_UNAVAILABLE")
SYSTEMIC = CallFailure(FailureKind.SYSTEMIC, "AUTHENTICATION_ERROR: fix the key")
TOO_LARGE = CallFailure(FailureKind.POISON, "LIMIT_EXCEEDED_ERROR (item_size_limit_exceeded)")


def test_in_flight_requests_never_exceed_the_bound_and_keys_overlap():
    gateway = RecordingGateway()
    run([insert(f"K{i}", seq=i + 1) for i in range(200)], gateway, max_in_flight=8)
    assert gateway.max_in_flight == 8
    assert len(gateway.cache) == 200


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["INSERT", "MODIFY", "REMOVE"])),
        min_size=1,
        max_size=25,
    ),
    st.integers(min_value=1, max_value=6),
)
def test_each_key_is_written_before_its_messages_which_follow_stream_order(history, max_in_flight):
    records = []
    for seq, (key, event) in enumerate(history, start=1):
        build = {"INSERT": insert, "MODIFY": modify, "REMOVE": remove}[event]
        records.append(build(key, seq=seq) if event == "REMOVE" else build(key, seq=seq, Version=str(seq)))
    gateway = RecordingGateway()

    run(records, gateway, max_in_flight=max_in_flight)

    for key in {k for k, _ in history}:
        calls = [method for method, k in gateway.log if k == key]
        assert calls[0] in ("set", "delete") and calls.count("set") + calls.count("delete") == 1
        sequence = [int(m["sequenceNumber"]) for m in gateway.published if m["key"] == key]
        assert sequence == [seq for seq, (k, _) in enumerate(history, start=1) if k == key]
        last_event = [event for k, event in history if k == key][-1]
        assert (key in gateway.cache) == (last_event != "REMOVE")


def test_retryable_failures_are_retried_while_time_allows():
    gateway = RecordingGateway({("set", "a"): [RETRYABLE] * 5, ("publish", "a"): [RETRYABLE] * 2})
    _, report = run([insert("a", seq=1)], gateway)
    assert report.failed_sequence_numbers == []
    assert report.retries == 7
    assert gateway.published[0]["sequenceNumber"] == "1"


def test_no_time_left_reports_the_keys_earliest_record_and_publishes_nothing_for_it():
    gateway = RecordingGateway({("set", "a"): [RETRYABLE]})
    _, report = run([insert("a", seq=1), insert("b", seq=2), modify("a", seq=3)], gateway, remaining_ms=0)
    assert report.failed_sequence_numbers == ["1"]
    assert [m["key"] for m in gateway.published] == ["b"]
    assert report.exhausted_causes == {"SERVER_UNAVAILABLE": 1}


def test_failed_publish_stops_the_key_at_that_change():
    gateway = RecordingGateway({("publish", "a"): [RETRYABLE]})
    # The first publish of "a" fails with no time to retry: it and the later change stay unpublished.
    _, report = run([insert("a", seq=1), modify("a", seq=2), insert("b", seq=3)], gateway, remaining_ms=0)
    assert report.failed_sequence_numbers == ["1"]
    assert [m["sequenceNumber"] for m in gateway.published] == ["3"]
    assert "a" in gateway.cache


def test_systemic_failure_halts_new_keys_and_reports_them():
    gateway = RecordingGateway({("set", "k0"): [SYSTEMIC]})
    _, report = run([insert(f"k{i}", seq=i + 1) for i in range(50)], gateway, max_in_flight=1)
    assert sorted(report.failed_sequence_numbers, key=int) == [str(i + 1) for i in range(50)]
    assert report.systemic_causes == {"AUTHENTICATION_ERROR: fix the key": 1}
    assert gateway.log == []  # nothing started after the cause was known


def test_item_too_large_becomes_poison_the_key_is_deleted_and_earlier_changes_published():
    gateway = RecordingGateway({("set", "a"): [TOO_LARGE]})
    gateway.cache["a"] = b"stale"
    _, report = run([insert("a", seq=1), modify("a", seq=2)], gateway)
    assert [p.sequence_number for p in report.poison] == ["2"]
    assert "a" not in gateway.cache
    assert [m["sequenceNumber"] for m in gateway.published] == ["1"]
    assert report.failed_sequence_numbers == []


def test_poison_publish_is_dead_lettered_and_the_key_goes_on():
    gateway = RecordingGateway({("publish", "a"): [CallFailure(FailureKind.POISON, "INVALID_ARGUMENT_ERROR")]})
    _, report = run([insert("a", seq=1), modify("a", seq=2)], gateway)
    assert [p.sequence_number for p in report.poison] == ["1"]
    assert [m["sequenceNumber"] for m in gateway.published] == ["2"]
