"""The backfill run: a parallel Scan of the table, every item brought into the cache while the table stays live.

The table is read with a parallel Scan (``TotalSegments`` segments, each its own sequence of pages) and every item
goes through ``KeySync.resync`` with the stream's key, value and TTL rules (set; an already expired item is deleted
instead), then is read again with a consistent read: if it changed since the scan read it (the table is live and the
stream processor may have written the newer state first), the newer item is written and checked again. Every
Momento call, retries included, waits its turn at one rate limiter shared by all segments (Momento operations per
second); the re-check reads wait at their own (item reads per second). Failures follow the stream's classification:
retryable ones are retried with backoff; an item the cache refuses for good (too large) is deleted from the cache,
listed in the summary and, when ``DLQ_URL`` is set, sent to the dead-letter queue as a poison record (keys only, for
the redrive, which resyncs that key); a systemic failure stops the run.

The state (``BackfillState``) advances only after a whole page is in the cache and settled, so a resumed run never
skips an item; a page whose items failed (or kept changing) is redone by the resume.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stream_processor.backfill.rate_limit import RateLimiter
from stream_processor.backfill.state import BackfillState, SegmentPosition, key_to_json
from stream_processor.backfill.summary import BackfillSummary, PoisonItem
from stream_processor.cache_keys import KeyTemplateMismatch
from stream_processor.config import ConfigurationError, Settings
from stream_processor.dead_letters import DeadLetterQueue
from stream_processor.key_sync import CacheCalls, KeyOutcome, KeySync, LiveKey, MomentoGateway, for_each_key
from stream_processor.momento_errors import FailureKind
from stream_processor.observability import logger
from stream_processor.planner import ChangeRules, KeyChange, PoisonRecord
from stream_processor.retries import Backoff, Deadline
from stream_processor.table_reads import TableReader

__all__ = ["BACKFILL_EVENT_SOURCE", "DEFAULT_RATE", "DEFAULT_SEGMENTS", "Backfill", "TableInfo"]

#: ``eventSource`` of the records the backfill dead-letters: not stream records, so the redrive resyncs their key.
BACKFILL_EVENT_SOURCE = "stream_processor.backfill"
DEFAULT_SEGMENTS = 4
DEFAULT_RATE = 50.0
#: Default pages take about this long at the rate limit, so a checkpoint (and the handler's stop) is never far away.
PAGE_SECONDS = 10.0


@dataclass(frozen=True)
class TableInfo:
    """What the backfill needs to know about the table: name, ARN, key attributes, approximate item count."""

    name: str
    arn: str
    key_names: tuple[str, ...]
    item_count: int | None = None

    @classmethod
    def describe(cls, client: Any, name: str) -> TableInfo:
        table = client.describe_table(TableName=name)["Table"]
        return cls(
            name=name,
            arn=table["TableArn"],
            key_names=tuple(key["AttributeName"] for key in table["KeySchema"]),
            item_count=table.get("ItemCount"),
        )


class Backfill:
    """Scans a table with parallel segments and brings every item into the cache under shared rate limits."""

    def __init__(
        self,
        settings: Settings,
        momento: MomentoGateway,
        table: TableInfo,
        *,
        dynamodb: Any,
        rate: float = DEFAULT_RATE,
        read_rate: float | None = None,
        dead_letters: DeadLetterQueue | None = None,
        table_reader: TableReader | None = None,
        page_size: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        retry_deadline: Callable[[], Deadline] | None = None,
        should_stop: Callable[[], str | None] = lambda: None,
        on_page: Callable[[BackfillState, int], None] = lambda state, items: None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.rules = ChangeRules.from_settings(settings)
        self.momento = momento
        self.table = table
        self.dynamodb = dynamodb
        self.limiter = RateLimiter(rate, clock, sleep)
        self.read_limiter = RateLimiter(read_rate or rate, clock, sleep)
        self.dead_letters = dead_letters
        self.table_reader = table_reader or TableReader(lambda: dynamodb)
        self.page_size = page_size
        self.clock = clock
        self.wall_clock = wall_clock
        self.should_stop = should_stop
        self.on_page = on_page
        self.calls = CacheCalls(
            momento,
            retry_deadline or self._fixed_retry_budget,
            backoff=backoff,
            rng=rng,
            sleep=sleep,
            pace=self.limiter.acquire,  # every attempt counts against Momento's operations-per-second limit
        )
        self.sync = KeySync(self.calls)
        self._check_key_template()

    def _check_key_template(self) -> None:
        """A KEY_TEMPLATE naming a non-key attribute would fail on every item: refuse before scanning."""
        try:
            self.rules.keys.cache_key(self.table.name, {name: {"S": "x"} for name in self.table.key_names})
        except KeyTemplateMismatch as mismatch:
            raise ConfigurationError(mismatch.cause) from None

    def _fixed_retry_budget(self) -> Deadline:
        end = self.clock() + 60.0
        return Deadline(lambda: int((end - self.clock()) * 1000))

    async def run(self, state: BackfillState) -> BackfillSummary:
        """Continue ``state`` (updated in place, page by page) until every segment is done or the run stops."""
        if state.table != self.table.name:
            raise ValueError(f"the resume state is for table {state.table!r}, not {self.table.name!r}")
        started = self.clock()
        retries_before = self.calls.retries
        summary = BackfillSummary(self.table.name, state.total_segments)
        self._summary = summary
        self._state = state
        self._halted: str | None = None
        await asyncio.gather(*(self._segment(position) for position in state.positions if not position.done))
        summary.complete = state.complete
        summary.items_total = state.items
        summary.retries = self.calls.retries - retries_before
        summary.stopped = summary.stopped or self._halted
        summary.duration_seconds = self.clock() - started
        logger.info(
            "backfill finished" if summary.complete else "backfill stopped", extra=summary.to_dict(with_keys=False)
        )
        return summary

    async def _segment(self, position: SegmentPosition) -> None:
        summary = self._summary
        while not position.done:
            if self._halted:
                return
            stop = self.should_stop()
            if stop:
                summary.stopped = stop
                return
            try:
                page = await asyncio.to_thread(self._scan, position)
            except (ClientError, BotoCoreError) as error:
                summary.failures.append(f"segment {position.segment}: Scan failed: {type(error).__name__}: {error}")
                return
            items = page.get("Items", [])
            now = self.wall_clock()
            outcomes = await for_each_key(
                [self._live_key(item, now) for item in items],
                self.sync.resync,
                concurrency=self.settings.max_in_flight,
            )
            if not await self._settle_page(position, outcomes):
                return  # the position stays before this page: a resume redoes it (writes are idempotent)
            summary.items += len(items)
            position.items += len(items)
            position.last_evaluated_key = page.get("LastEvaluatedKey")
            position.done = position.last_evaluated_key is None
            self.on_page(self._state, len(items))

    async def _settle_page(self, position: SegmentPosition, outcomes: Sequence[KeyOutcome]) -> bool:
        """Count a page's outcomes; False when an item failed (the page must be redone)."""
        summary = self._summary
        poison: list[tuple[str, PoisonRecord]] = []
        failed = None
        for outcome in outcomes:
            summary.sets += outcome.sets
            summary.deletes += outcome.deletes
            summary.rechecks += outcome.rechecks
            summary.rewrites += outcome.rewrites
            poison.extend((outcome.cache_key, record) for record in outcome.poison)
            if outcome.failure is not None and failed is None:
                failed = outcome
        if poison:
            await asyncio.to_thread(self._dead_letter, poison)
        if failed is None:
            return True
        assert failed.failure is not None
        summary.failures.append(f"segment {position.segment}: {failed.failure.cause}")
        summary.failed_keys[failed.cache_key] = failed.failure.cause
        if failed.failure.kind is FailureKind.SYSTEMIC:
            self._halted = f"Momento refuses every request: {failed.failure.cause}"
        return False

    def _scan(self, position: SegmentPosition) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "Segment": position.segment,
            "TotalSegments": self._state.total_segments,
        }
        if position.last_evaluated_key is not None:
            request["ExclusiveStartKey"] = position.last_evaluated_key
        request["Limit"] = self.page_size or max(1, int(self.limiter.rate * PAGE_SECONDS / self._state.total_segments))
        return self.dynamodb.scan(**request)

    def _live_key(self, item: Mapping[str, Any], now: float) -> LiveKey:
        keys = {name: item[name] for name in self.table.key_names}
        # Keys only: an item too large for the cache may be too large for an SQS message as well.
        record = {
            "eventSource": BACKFILL_EVENT_SOURCE,
            "eventSourceARN": self.table.arn,
            "dynamodb": {"Keys": key_to_json(keys)},
        }

        async def reread() -> Mapping[str, Any] | None:
            await self.read_limiter.acquire()
            return await asyncio.to_thread(self.table_reader.get, self.table.name, keys)

        return LiveKey(
            cache_key=self.rules.keys.cache_key(self.table.name, keys),
            item=item,
            reread=reread,
            cache_write=lambda current: self.rules.cache_write(current, now),
            blame=KeyChange("", record, None),
        )

    def _dead_letter(self, refused: Sequence[tuple[str, PoisonRecord]]) -> None:
        unsent: list[PoisonRecord] = []
        if self.dead_letters is not None:
            unsent, errors = self.dead_letters.send([record for _, record in refused])
            for error in dict.fromkeys(errors):
                logger.error("dead-letter queue send failed", extra={"cause": error})
        unsent_ids = {id(record) for record in unsent}
        for cache_key, record in refused:
            dead_lettered = self.dead_letters is not None and id(record) not in unsent_ids
            self._summary.poison.append(PoisonItem(cache_key, record.reason, dead_lettered))
            logger.warning("poison item", extra={"reason": record.reason, "deadLettered": dead_lettered})
