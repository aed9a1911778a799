"""One cache key brought in line with the table: the per-key rule every writer of the cache follows.

The stream processor, the redrive and the backfill all go through ``KeySync``, so the rule lives here only:

1. **Write the key**: set its value, or delete it when the item is gone or expired. If the cache refuses the value
   for good (too large), delete the key instead and dead-letter the change that wrote it: the cache never holds a
   state the table has moved past.
2. **Out-of-band writers re-check** (``KeySync.resync``: backfill and redrive). They write a value they read from the
   table themselves, so a newer change may have reached the cache through the stream between their read and their
   write, and their older value would then land last. So after the write landed, the item is read again with a
   consistent read; if it changed, the new item is written and checked again (at most ``max_rechecks`` times, then
   the key is reported as unsettled). Once a re-read finds the item unchanged after the write landed, every later
   change of the item reaches the stream after that read, so the stream processor writes it after this write:
   nothing older can land last. The stream processor itself needs no re-check (``KeySync.apply``): it writes the
   changes in stream order, which is the table's order.
3. **Publish the key's changes** in stream order, each only after step 1 landed, stopping at the first failure (the
   change and the later ones of the key are reported; a change the topic refuses for good is dead-lettered and the
   key goes on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from stream_processor.momento_calls import CacheCalls
from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.planner import KeyChange, KeyPlan, PoisonRecord, SetItem
from stream_processor.table_reads import TableReadError

__all__ = ["MAX_RECHECKS", "KeyOutcome", "KeySync", "LiveKey", "Publisher", "for_each_key"]

#: Re-checks of an out-of-band write before the key is reported as unsettled (it keeps changing under the writer).
MAX_RECHECKS = 5

Item = Mapping[str, Any]


@dataclass(slots=True)
class KeyOutcome:
    """What happened to one key: the write that landed, publishes, poison found, and the failure that stopped it."""

    cache_key: str
    action: str | None = None  # "set" / "delete": what the cache holds now (None: the write never landed)
    sets: int = 0
    deletes: int = 0
    published: int = 0
    poison: list[PoisonRecord] = field(default_factory=list)
    failure: CallFailure | None = None
    #: The change to report when the key stopped: its earliest change (write failed) or the failed publish.
    failed_change: KeyChange | None = None
    rechecks: int = 0  # consistent re-reads of the item after an out-of-band write
    rewrites: int = 0  # writes again because the item changed under the writer
    unsettled: bool = False
    item: Item | None = None  # the item the out-of-band write settled on (resync only)

    @property
    def written(self) -> bool:
        return self.action is not None


class Publisher(Protocol):
    """Publishes one key's change messages in stream order, stopping at the first failure (``publishers.py``).

    It may publish at once or later (packed with other keys' messages): it records in ``outcome`` what was published,
    the poison found, and the failure and the change to report.
    """

    async def publish_in_order(self, changes: Sequence[KeyChange], outcome: KeyOutcome) -> None: ...


@dataclass(frozen=True)
class LiveKey:
    """A key an out-of-band writer brings in line with the table: the item it read, and how to read it again.

    ``cache_write`` turns an item into the cache write (None: delete); ``blame`` is the change dead-lettered if the
    cache refuses the item for good; ``changes`` are the change messages to publish once the key has settled on an
    item (the redrive's depend on that item; the backfill publishes none).
    """

    cache_key: str
    item: Item | None
    reread: Callable[[], Awaitable[Item | None]]
    cache_write: Callable[[Item | None], SetItem | None]
    blame: KeyChange
    changes: Callable[[Item | None], Sequence[KeyChange]] = lambda item: ()


class KeySync:
    """Brings keys in line: ``apply`` for the stream's plans, ``resync`` for out-of-band writers (with the re-check)."""

    def __init__(self, calls: CacheCalls, publisher: Publisher, *, max_rechecks: int = MAX_RECHECKS) -> None:
        self.calls = calls
        self.publisher = publisher
        self.max_rechecks = max_rechecks

    async def apply(self, plan: KeyPlan) -> KeyOutcome:
        """The stream path: the plan's one write, then every change of the key in stream order."""
        outcome = KeyOutcome(plan.cache_key)
        refused = await self._write(plan.cache_key, plan.write, plan.writer, outcome)
        if outcome.failure is not None:
            outcome.failed_change = plan.changes[0]
            return outcome
        await self._publish(plan.changes, refused, outcome)
        return outcome

    async def resync(self, key: LiveKey) -> KeyOutcome:
        """The out-of-band path: write what the table holds, re-read until it holds still, then publish."""
        outcome = KeyOutcome(key.cache_key)
        item = key.item
        refused: KeyChange | None = None
        for attempt in range(self.max_rechecks + 1):
            if attempt:
                outcome.rewrites += 1
                outcome.poison.clear()  # only the write the key settles on decides whether its record is poison
            refused = await self._write(key.cache_key, key.cache_write(item), key.blame, outcome)
            if outcome.failure is not None:
                outcome.failed_change = key.blame
                return outcome
            try:
                current = await key.reread()
            except TableReadError as error:  # the key is not known to be settled: report it, try again later
                outcome.failure = CallFailure(FailureKind.RETRYABLE, f"table re-read failed: {error}")
                outcome.failed_change = key.blame
                return outcome
            outcome.rechecks += 1
            if current == item:
                break
            item = current
        else:
            outcome.unsettled = True
            outcome.failure = CallFailure(
                FailureKind.RETRYABLE,
                f"the item kept changing during {self.max_rechecks + 1} writes: the stream will bring its latest state",
            )
            outcome.failed_change = key.blame
            return outcome
        outcome.item = item
        await self._publish(key.changes(item), refused, outcome)
        return outcome

    async def _write(
        self, cache_key: str, write: SetItem | None, blame: KeyChange, outcome: KeyOutcome
    ) -> KeyChange | None:
        """Write the key; returns the change dead-lettered because the cache refused its value (then deleted)."""
        failure = await self.calls.write(cache_key, write)
        refused = None
        if failure is not None and failure.kind is FailureKind.POISON and write is not None:
            # The cache refuses this value for good: dead-letter the change, and delete the key so the cache never
            # keeps a state the table has moved past.
            refused = blame
            outcome.poison.append(PoisonRecord(blame.sequence_number or None, failure.cause, blame.record))
            write = None
            failure = await self.calls.write(cache_key, None)
        if failure is not None:
            outcome.failure = failure
            return None
        outcome.action = "set" if write is not None else "delete"
        if write is None:
            outcome.deletes += 1
        else:
            outcome.sets += 1
        return refused

    async def _publish(self, changes: Iterable[KeyChange], refused: KeyChange | None, outcome: KeyOutcome) -> None:
        # A change without a message is poison (in the dead-letter queue; the redrive publishes it), and so is the
        # change whose value the cache refused.
        skipped = refused.record if refused is not None else None
        publishable = [change for change in changes if change.message is not None and change.record is not skipped]
        if publishable:
            await self.publisher.publish_in_order(publishable, outcome)


async def for_each_key(
    jobs: Iterable[Any],
    run: Callable[[Any], Awaitable[KeyOutcome]],
    *,
    concurrency: int,
    halted: Callable[[], bool] = lambda: False,
    skipped: Callable[[Any], None] = lambda job: None,
) -> list[KeyOutcome]:
    """Run ``run`` on every job with at most ``concurrency`` keys at once; once ``halted()``, skip the rest.

    A fixed pool of workers pulling jobs keeps memory flat at any batch size; each key has at most one request in
    flight, so the pool size is the in-flight bound. Outcomes come back in the jobs' order (skipped ones left out).
    """
    pending = iter(enumerate(jobs))
    results: dict[int, KeyOutcome] = {}

    async def worker() -> None:
        for index, job in pending:
            if halted():
                skipped(job)
                continue
            results[index] = await run(job)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return [results[index] for index in sorted(results)]
