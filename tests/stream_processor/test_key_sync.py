"""The per-key rule of the out-of-band writers: write what the table holds, re-read, write again until it holds still.

Driven with an in-memory gateway and a scripted sequence of table reads, because what is under test is the routine's
own decisions; the races against the real SDK and the local Momento server are in test_backfill.py and
test_redrive.py (writes held in the server) and in test_no_loss_live.py.
"""

from __future__ import annotations

import asyncio
import random

from stream_processor.key_sync import MAX_RECHECKS, KeySync, LiveKey
from stream_processor.momento_calls import CacheCalls
from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.planner import KeyChange, SetItem
from stream_processor.publishers import OneMessagePerChange
from stream_processor.retries import Backoff, Deadline
from stream_processor.table_reads import TableReadError

TOO_LARGE = CallFailure(FailureKind.POISON, "LIMIT_EXCEEDED_ERROR (item_size_limit_exceeded)")
RECORD = {"eventSource": "stream_processor.backfill", "dynamodb": {"Keys": {"pk": {"S": "k"}}}}


class Cache:
    """A cache that refuses values containing b"big" as too large, and records every write."""

    cache_call_seconds = 0.0
    publish_call_seconds = 0.0

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}
        self.writes: list[bytes | None] = []

    async def set(self, key: str, value: bytes, ttl_ms: int) -> CallFailure | None:
        self.writes.append(value)
        if b"big" in value:
            return TOO_LARGE
        self.items[key] = value
        return None

    async def delete(self, key: str) -> CallFailure | None:
        self.writes.append(None)
        self.items.pop(key, None)
        return None

    async def publish(self, message: bytes) -> CallFailure | None:  # pragma: no cover - no messages here
        raise AssertionError("nothing to publish")


def item(value: str) -> dict:
    return {"pk": {"S": "k"}, "v": {"S": value}}


def resync(first: dict | None, reads: list) -> tuple:
    """Resync key "k" from ``first``; ``reads`` are what the table answers to each re-read (an exception: raised)."""
    cache = Cache()
    calls = CacheCalls(cache, lambda: Deadline(lambda: 60_000), backoff=Backoff(0, 0), rng=random.Random(0))
    answers = iter(reads)

    async def reread():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    key = LiveKey(
        cache_key="k",
        item=first,
        reread=reread,
        cache_write=lambda current: None if current is None else SetItem(current["v"]["S"].encode(), 60_000),
        blame=KeyChange("", RECORD, None),
    )
    outcome = asyncio.run(KeySync(calls, OneMessagePerChange(calls)).resync(key))
    return outcome, cache


def test_an_item_that_held_still_is_written_once_and_read_back_once():
    outcome, cache = resync(item("a"), [item("a")])

    assert (outcome.failure, outcome.rechecks, outcome.rewrites) == (None, 1, 0)
    assert cache.items == {"k": b"a"}


def test_an_item_changed_meanwhile_is_written_again_until_it_holds_still():
    outcome, cache = resync(item("a"), [item("b"), None, None])

    assert cache.writes == [b"a", b"b", None]
    assert (outcome.failure, outcome.rechecks, outcome.rewrites, outcome.action) == (None, 3, 2, "delete")
    assert cache.items == {}


def test_an_item_that_keeps_changing_is_reported_unsettled_after_the_last_write():
    outcome, cache = resync(item("0"), [item(str(n)) for n in range(1, MAX_RECHECKS + 2)])

    assert outcome.unsettled
    assert outcome.failure is not None and outcome.failure.kind is FailureKind.RETRYABLE
    assert len(cache.writes) == MAX_RECHECKS + 1
    assert outcome.failed_change is not None and outcome.failed_change.record is RECORD


def test_a_failed_re_read_is_reported_not_taken_as_settled():
    outcome, _ = resync(item("a"), [TableReadError("GetItem failed: throttled")])

    assert outcome.failure is not None and "re-read failed" in outcome.failure.cause
    assert outcome.failed_change is not None


def test_a_refused_item_is_poison_only_if_the_key_settles_on_it():
    # Too large at first (the key is deleted instead), then the item shrinks: the write it settles on lands, so
    # nothing goes to the dead-letter queue.
    shrunk, cache = resync(item("big"), [item("small"), item("small")])
    assert shrunk.poison == [] and cache.items == {"k": b"small"}

    # Still too large when it settles: its record is dead-lettered once, however many writes it took.
    stays, cache = resync(item("big one"), [item("big two"), item("big two")])
    assert [record.record for record in stays.poison] == [RECORD]
    assert cache.items == {}
