"""Publishing a key's change messages once its cache write has landed: one topic message per change, or packed.

``OneMessagePerChange`` (the default) publishes each change message on its own, in stream order. ``PackedChanges``
(``TOPIC_PACKING=on``) collects the messages of every key of a batch as the keys' writes land, packs consecutive
ones into topic messages of at most ``TOPIC_MAX_BYTES`` (``topic_packing``), and publishes the packs when the batch's
writes are done: packs that share no key in flight together, a pack holding a key only after the earlier pack
holding that key was published. The rules stay those of one message per change: per-key stream order, a change
published only after the cache holds it or a later state, at-least-once (a pack that fails is retried whole, and the
changes it carried are reported from each key's earliest unpublished one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from stream_processor.key_sync import KeyOutcome
from stream_processor.momento_calls import CacheCalls
from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.planner import KeyChange, PoisonRecord
from stream_processor.topic_packing import TopicPack, TopicPacker

__all__ = ["OneMessagePerChange", "PackedChanges"]


class OneMessagePerChange:
    """The default publisher: one topic message per change, one after another."""

    def __init__(self, calls: CacheCalls) -> None:
        self.calls = calls

    async def publish_in_order(self, changes: Sequence[KeyChange], outcome: KeyOutcome) -> None:
        for change in changes:
            assert change.message is not None
            failure = await self.calls.publish(change.message)
            if failure is None:
                outcome.published += 1
            elif failure.kind is FailureKind.POISON:
                outcome.poison.append(PoisonRecord(change.sequence_number or None, failure.cause, change.record))
            else:
                outcome.failure, outcome.failed_change = failure, change
                return  # the later changes of the key wait for Lambda's retry (or the next redrive), in order


@dataclass(slots=True)  # not frozen: one per change (see changes.Change)
class _Queued:
    """A change waiting in a pack, and the outcome of its key."""

    change: KeyChange
    outcome: KeyOutcome


class PackedChanges:
    """Packs the change messages of a batch's keys into topic messages; ``flush`` publishes them."""

    def __init__(self, calls: CacheCalls, max_bytes: int, *, concurrency: int) -> None:
        self.calls = calls
        self.concurrency = concurrency
        self._packer = TopicPacker(max_bytes)
        self._packs: list[TopicPack] = []
        self._queued: list[_Queued] = []
        self.topic_messages = 0  # topic messages published (each a pack, or a change on its own after a refusal)

    async def publish_in_order(self, changes: Sequence[KeyChange], outcome: KeyOutcome) -> None:
        for change in changes:
            assert change.message is not None
            self._queued.append(_Queued(change, outcome))
            closed = self._packer.add(outcome.cache_key, change.message)
            if closed is not None:
                self._packs.append(closed)

    async def flush(self) -> None:
        """Publish every pack, per-key order kept; record published changes and failures in the keys' outcomes."""
        last = self._packer.flush()
        if last is not None:
            self._packs.append(last)
        packs, self._packs = self._packs, []
        if not packs:
            return
        slots = asyncio.Semaphore(self.concurrency)
        done: list[asyncio.Future[CallFailure | None]] = [asyncio.get_running_loop().create_future() for _ in packs]

        async def publish(position: int) -> None:
            pack = packs[position]
            earlier = [await done[follow] for follow in pack.follows]
            failure = next((failure for failure in earlier if failure is not None), None)
            if failure is None:
                async with slots:
                    failure = await self._publish(pack)
            else:  # a pack after a failed one holding one of its keys waits, whole, for Lambda's retry
                self._fail(pack.changes, failure)
            done[position].set_result(failure)

        await asyncio.gather(*(publish(position) for position in range(len(packs))))
        self._queued.clear()

    async def _publish(self, pack: TopicPack) -> CallFailure | None:
        """Publish one pack; the failure that stops its keys, or None."""
        failure = await self.calls.publish(pack.payload)
        if failure is None:
            self.topic_messages += 1
            for position in pack.changes:
                self._queued[position].outcome.published += 1
            return None
        if failure.kind is FailureKind.POISON:
            # The topic refuses the pack for good: publish its changes one by one, so that only the one it refuses
            # is dead-lettered.
            return await self._publish_one_by_one(pack)
        self._fail(pack.changes, failure)
        return failure

    async def _publish_one_by_one(self, pack: TopicPack) -> CallFailure | None:
        for index, position in enumerate(pack.changes):
            queued = self._queued[position]
            failure = await self.calls.publish(queued.change.message or b"")
            if failure is None:
                self.topic_messages += 1
                queued.outcome.published += 1
            elif failure.kind is FailureKind.POISON:
                change = queued.change
                queued.outcome.poison.append(PoisonRecord(change.sequence_number or None, failure.cause, change.record))
            else:
                self._fail(pack.changes[index:], failure)
                return failure
        return None

    def _fail(self, positions: Sequence[int], failure: CallFailure) -> None:
        """The changes at ``positions`` stay unpublished: each key reports its earliest one (later packs wait)."""
        for position in positions:
            queued = self._queued[position]
            outcome = queued.outcome
            if outcome.failure is None:
                outcome.failure, outcome.failed_change = failure, queued.change
