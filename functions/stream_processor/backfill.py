"""Backfill: warm the cache from a table that already holds data, at a rate Momento's account limits allow.

The table is read with a parallel Scan (``TotalSegments`` segments, each its own sequence of pages) and every item is
set into the cache with the stream's key, value and TTL rules (an already expired item is deleted instead). Every
Momento call, retries included, waits its turn at one rate limiter shared by all segments (operations per second;
Momento's default account limit is 100, the default here 50). Failures follow the stream's classification: retryable
ones are retried with backoff; an item the cache refuses for good (too large) is deleted from the cache, listed in the
summary and, when ``DLQ_URL`` is set, sent to the dead-letter queue as a poison record (keys only, for the redrive,
which resyncs that key); a systemic failure stops the run.

Resumable: the state is the last evaluated key of each segment, advanced only after a whole page is in the cache. The
CLI writes it to a resume file after every page; the handler returns ``{"complete": false, "resume": {...}}`` when
the invocation's time runs low, and is invoked again with ``{"resume": {...}}`` to continue.

``python -m stream_processor.backfill --table NAME [--segments 4] [--rate 50] [--resume FILE]`` or
``stream_processor.backfill.handler`` with ``{"table": ..., "segments": ..., "rate": ..., "resume": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stream_processor.cache_keys import KeyTemplateMismatch
from stream_processor.config import ConfigurationError, Settings, load_settings
from stream_processor.dead_letters import DeadLetterQueue
from stream_processor.executor import MomentoGateway
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.observability import logger, logs_on_stderr
from stream_processor.planner import ChangeRules, PoisonRecord
from stream_processor.retries import Backoff, Deadline, call_with_retries

__all__ = [
    "BACKFILL_EVENT_SOURCE",
    "Backfill",
    "BackfillState",
    "BackfillSummary",
    "PoisonItem",
    "RateLimiter",
    "SegmentPosition",
    "TableInfo",
    "handler",
    "main",
]

#: ``eventSource`` of the records the backfill dead-letters: not stream records, so the redrive resyncs their key.
BACKFILL_EVENT_SOURCE = "stream_processor.backfill"
DEFAULT_SEGMENTS = 4
DEFAULT_RATE = 50.0
MAX_SEGMENTS = 1_000_000  # DynamoDB's TotalSegments limit
#: The handler stops starting pages when the invocation has less than this left.
STOP_MARGIN_SECONDS = 30.0
#: Default pages take about this long at the rate limit, so a checkpoint (and the handler's stop) is never far away.
PAGE_SECONDS = 10.0


# -- state ---------------------------------------------------------------------------------------------------------


@dataclass
class SegmentPosition:
    """Where one segment's scan stands: the key to start the next page after, and whether it is finished."""

    segment: int
    last_evaluated_key: dict[str, Any] | None = None
    done: bool = False
    items: int = 0


@dataclass
class BackfillState:
    """The resumable state of a backfill: one position per segment (JSON-safe: binary keys as base64 text)."""

    table: str
    total_segments: int
    positions: list[SegmentPosition]

    @classmethod
    def new(cls, table: str, total_segments: int) -> BackfillState:
        if not 1 <= total_segments <= MAX_SEGMENTS:
            raise ValueError(f"segments must be between 1 and {MAX_SEGMENTS}, got {total_segments}")
        return cls(table, total_segments, [SegmentPosition(segment) for segment in range(total_segments)])

    @property
    def complete(self) -> bool:
        return all(position.done for position in self.positions)

    @property
    def items(self) -> int:
        return sum(position.items for position in self.positions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "segments": self.total_segments,
            "positions": [
                {
                    "segment": p.segment,
                    "lastEvaluatedKey": None if p.last_evaluated_key is None else _key_to_json(p.last_evaluated_key),
                    "done": p.done,
                    "items": p.items,
                }
                for p in self.positions
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackfillState:
        """The state a previous run returned or wrote; ``ValueError`` when it is not one."""
        try:
            table, total = data["table"], data["segments"]
            positions = [
                SegmentPosition(
                    segment=int(p["segment"]),
                    last_evaluated_key=None
                    if p.get("lastEvaluatedKey") is None
                    else _key_from_json(p["lastEvaluatedKey"]),
                    done=bool(p.get("done", False)),
                    items=int(p.get("items", 0)),
                )
                for p in data["positions"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a backfill resume state: {type(error).__name__}: {error}") from None
        if (
            not isinstance(table, str)
            or not isinstance(total, int)
            or sorted(p.segment for p in positions) != list(range(total))
        ):
            raise ValueError("not a backfill resume state: table, segments and one position per segment are required")
        return cls(table, total, sorted(positions, key=lambda p: p.segment))


def _key_to_json(key: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB key (S, N or B values) as JSON: boto3's bytes become base64 text."""
    return {
        name: {"B": base64.b64encode(value["B"]).decode("ascii")} if isinstance(value.get("B"), bytes) else dict(value)
        for name, value in key.items()
    }


def _key_from_json(key: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``_key_to_json``: boto3 wants bytes for B values."""
    return {
        name: {"B": base64.b64decode(value["B"])} if isinstance(value.get("B"), str) else dict(value)
        for name, value in key.items()
    }


@dataclass(frozen=True)
class PoisonItem:
    """An item the cache refuses for good: its cache key, why, and whether it reached the dead-letter queue."""

    cache_key: str
    reason: str
    dead_lettered: bool


@dataclass
class BackfillSummary:
    """What a run did (counts are for this run; ``items_total`` includes earlier runs of a resumed backfill)."""

    table: str
    segments: int
    complete: bool = False
    items: int = 0
    items_total: int = 0
    sets: int = 0
    deletes: int = 0
    retries: int = 0
    poison: list[PoisonItem] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stopped: str | None = None
    duration_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "table": self.table,
            "segments": self.segments,
            "complete": self.complete,
            "items": self.items,
            "itemsTotal": self.items_total,
            "sets": self.sets,
            "deletes": self.deletes,
            "retries": self.retries,
            "poison": [{"key": p.cache_key, "reason": p.reason, "deadLettered": p.dead_lettered} for p in self.poison],
            "failures": self.failures,
            "durationSeconds": round(self.duration_seconds, 3),
        }
        if self.stopped:
            out["stopped"] = self.stopped
        return out

    def text(self) -> str:
        state = "complete" if self.complete else "INCOMPLETE (resume to continue)"
        lines = [
            f"Backfill of {self.table} ({self.segments} segments): {state}",
            f"  items this run: {self.items} (all runs: {self.items_total})",
            f"  cache sets: {self.sets}, deletes (expired items): {self.deletes}, retries: {self.retries}",
            f"  poison items: {len(self.poison)}",
        ]
        lines += [
            f"    - {p.cache_key}: {p.reason}{' (sent to the DLQ)' if p.dead_lettered else ''}" for p in self.poison
        ]
        lines += [f"  failure: {failure}" for failure in self.failures]
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        return "\n".join(lines)


# -- rate limit ----------------------------------------------------------------------------------------------------


class RateLimiter:
    """At most ``rate`` operations per second, spaced evenly, shared by every segment (FIFO).

    Calls start at least ``1/rate`` seconds apart, so no one-second window holds more than ``rate`` of them; after an
    idle spell the schedule restarts from now instead of letting a burst catch up.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of operations per second, got {rate}")
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._origin = 0.0
        self._count = 0
        self._lock: asyncio.Lock | None = None

    async def acquire(self) -> None:
        if self._lock is None:  # created on the running loop
            self._lock = asyncio.Lock()
        async with self._lock:  # one waiter at a time keeps the order and the spacing exact
            now = self.clock()
            slot = self._origin + self._count / self.rate  # computed from the origin: no drift from summed intervals
            if self._count == 0 or slot <= now:
                self._origin, self._count, slot = now, 0, now
            self._count += 1
            if slot > now:
                await self.sleep(slot - now)


# -- the run -------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _RefusedItem:
    """An item the cache refuses for good, as the poison record the redrive understands."""

    cache_key: str
    poison: PoisonRecord


class Backfill:
    """Scans a table with parallel segments and writes every item into the cache under a shared rate limit."""

    def __init__(
        self,
        settings: Settings,
        momento: MomentoGateway,
        table: TableInfo,
        *,
        dynamodb: Any,
        rate: float = DEFAULT_RATE,
        dead_letters: DeadLetterQueue | None = None,
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
        self.dead_letters = dead_letters
        self.page_size = page_size
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.retry_deadline = retry_deadline or self._fixed_retry_budget
        self.should_stop = should_stop
        self.on_page = on_page
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
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
        summary = BackfillSummary(self.table.name, state.total_segments)
        self._summary = summary
        self._state = state
        self._halted: str | None = None
        self._slots = asyncio.Semaphore(self.settings.max_in_flight)
        await asyncio.gather(*(self._segment(position) for position in state.positions if not position.done))
        summary.complete = state.complete
        summary.items_total = state.items
        summary.stopped = summary.stopped or self._halted
        summary.duration_seconds = self.clock() - started
        logger.info("backfill finished" if summary.complete else "backfill stopped", extra=summary.to_dict())
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
            outcomes = await asyncio.gather(*(self._write_item(item, now) for item in items))
            failed = [outcome for outcome in outcomes if isinstance(outcome, CallFailure)]
            if failed:
                # The position stays before this page: a resume rewrites it (writes are idempotent).
                summary.failures.append(f"segment {position.segment}: {failed[0].cause}")
                if failed[0].kind is FailureKind.SYSTEMIC:
                    self._halted = f"Momento refuses every request: {failed[0].cause}"
                return
            poison = [outcome for outcome in outcomes if isinstance(outcome, _RefusedItem)]
            if poison:
                await asyncio.to_thread(self._dead_letter, poison)
            summary.items += len(items)
            position.items += len(items)
            position.last_evaluated_key = page.get("LastEvaluatedKey")
            position.done = position.last_evaluated_key is None
            self.on_page(self._state, len(items))

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

    async def _write_item(self, item: Mapping[str, Any], now: float) -> CallFailure | _RefusedItem | None:
        """Set (or, expired, delete) one item; a failure that outlasted retries, a poison record, or None."""
        keys = {name: item[name] for name in self.table.key_names}
        cache_key = self.rules.keys.cache_key(self.table.name, keys)
        write = self.rules.cache_write(item, now)
        momento = self.momento
        async with self._slots:
            if write is None:
                failure = await self._call(lambda: momento.delete(cache_key))
                self._summary.deletes += failure is None
                return failure
            failure = await self._call(lambda: momento.set(cache_key, write.value, write.ttl_ms))
            if failure is None:
                self._summary.sets += 1
                return None
            if failure.kind is not FailureKind.POISON:
                return failure
            # The cache refuses this item for good: make sure it holds no older value of it either.
            deleted = await self._call(lambda: momento.delete(cache_key))
            if deleted is not None:
                return deleted
            # Keys only: an item too large for the cache may be too large for an SQS message as well.
            record = {
                "eventSource": BACKFILL_EVENT_SOURCE,
                "eventSourceARN": self.table.arn,
                "dynamodb": {"Keys": _key_to_json(keys)},
            }
            return _RefusedItem(cache_key, PoisonRecord(None, failure.cause, record))

    async def _call(self, operation: Callable[[], Awaitable[CallFailure | None]]) -> CallFailure | None:
        async def paced() -> CallFailure | None:
            await self.limiter.acquire()  # every attempt counts against Momento's operations-per-second limit
            return await operation()

        return await call_with_retries(
            paced,
            self.retry_deadline(),
            self.momento.cache_call_seconds,
            backoff=self.backoff,
            rng=self.rng,
            on_retry=self._count_retry,
            sleep=self.sleep,
        )

    def _count_retry(self, failure: CallFailure) -> None:
        self._summary.retries += 1

    def _dead_letter(self, refused: Sequence[_RefusedItem]) -> None:
        unsent: list[PoisonRecord] = []
        if self.dead_letters is not None:
            unsent, errors = self.dead_letters.send([item.poison for item in refused])
            for error in dict.fromkeys(errors):
                logger.error("dead-letter queue send failed", extra={"cause": error})
        unsent_ids = {id(record) for record in unsent}
        for item in refused:
            dead_lettered = self.dead_letters is not None and id(item.poison) not in unsent_ids
            self._summary.poison.append(PoisonItem(item.cache_key, item.poison.reason, dead_lettered))
            logger.warning("poison item", extra={"key": item.cache_key, "reason": item.poison.reason})


# -- entry points --------------------------------------------------------------------------------------------------


@cache
def runtime() -> tuple[Settings, MomentoRuntime]:
    """The container's settings and Momento clients, built once."""
    settings = load_settings()
    return settings, _momento_runtime(settings)


def _momento_runtime(settings: Settings) -> MomentoRuntime:
    return MomentoRuntime.from_settings(settings)


@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any] | None, context: Any) -> dict[str, Any]:
    """Backfill (or continue backfilling) a table; returns ``{"complete", "summary"}`` plus ``"resume"`` if not done.

    Event (all optional): ``table`` (default ``TABLE_NAME``), ``segments`` (4), ``rate`` (Momento operations per
    second, 50), ``resume`` (the ``resume`` of a previous response), ``pageSize`` (Scan Limit; default: about
    ``PAGE_SECONDS`` of work per page at the rate).
    """
    event = event or {}
    settings, momento = runtime()
    resume = event.get("resume")
    table = event.get("table") or (resume or {}).get("table") or settings.table_name
    if not table:
        raise ValueError('no table: pass {"table": NAME} (or set TABLE_NAME)')
    segments = _number(event.get("segments", DEFAULT_SEGMENTS), "segments", int)
    rate = _number(event.get("rate", DEFAULT_RATE), "rate", float)
    state = BackfillState.from_dict(resume) if resume else BackfillState.new(table, segments)
    if resume and "segments" in event and segments != state.total_segments:
        raise ValueError(f"segments must match the resume state ({state.total_segments}), got {segments}")

    def time_low() -> str | None:
        if context.get_remaining_time_in_millis() / 1000.0 < STOP_MARGIN_SECONDS:
            return "the invocation's remaining time ran low: invoke again with the returned resume state"
        return None

    import boto3

    dynamodb = boto3.client("dynamodb")
    backfill = Backfill(
        settings,
        momento,
        TableInfo.describe(dynamodb, state.table),
        dynamodb=dynamodb,
        rate=rate,
        dead_letters=DeadLetterQueue(settings.dlq_url) if settings.dlq_url else None,
        page_size=_number(event["pageSize"], "pageSize", int) if "pageSize" in event else None,
        retry_deadline=lambda: Deadline.from_context(context),
        should_stop=time_low,
        on_page=lambda state, items: logger.info(
            "backfill progress", extra={"items": state.items, "segmentsDone": sum(p.done for p in state.positions)}
        ),
    )
    summary = momento.run(backfill.run(state))
    response: dict[str, Any] = {"complete": summary.complete, "summary": summary.to_dict()}
    if not summary.complete:
        response["resume"] = state.to_dict()
    return response


def _number(value: Any, name: str, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if isinstance(value, bool) or not number > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: backfill a table, writing the resume file after every page; exit status 0 when complete."""
    with logs_on_stderr():
        return _cli(argv)


def _cli(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stream_processor.backfill",
        description="Warm the Momento cache from an existing DynamoDB table with the stream's key, value and TTL "
        "rules. Momento settings come from the function's environment variables.",
    )
    parser.add_argument("--table", default=os.environ.get("TABLE_NAME"), help="the table (default: $TABLE_NAME)")
    parser.add_argument("--segments", type=int, default=DEFAULT_SEGMENTS, help="parallel Scan segments")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="Momento operations per second, in total")
    parser.add_argument(
        "--resume",
        type=Path,
        help="resume file: continued when it exists (its segments win), written after every page "
        "(default: backfill-TABLE.json)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not args.table and not (args.resume and args.resume.exists()):
        parser.error("--table is required (or set TABLE_NAME)")
    if not 1 <= args.segments <= MAX_SEGMENTS:
        parser.error(f"--segments must be between 1 and {MAX_SEGMENTS}")
    if not args.rate > 0:
        parser.error("--rate must be positive")
    resume_file: Path = args.resume or Path(f"backfill-{args.table}.json")
    if resume_file.exists():
        state = BackfillState.from_dict(json.loads(resume_file.read_text()))
        if args.table and state.table != args.table:
            parser.error(f"{resume_file} is for table {state.table!r}, not {args.table!r}")
        print(f"resuming from {resume_file}: {state.items} items done", file=sys.stderr)
    else:
        state = BackfillState.new(args.table, args.segments)
    try:
        settings = load_settings()
    except ConfigurationError as error:
        parser.exit(2, f"configuration error: {error}\n")

    import boto3

    dynamodb = boto3.client("dynamodb")
    try:
        table = TableInfo.describe(dynamodb, state.table)
    except (ClientError, BotoCoreError) as error:
        parser.exit(2, f"cannot describe table {state.table!r}: {error}\n")
    momento = _momento_runtime(settings)
    progress = _Progress(table.item_count, state.items)

    def checkpoint(state: BackfillState, items: int) -> None:
        _write_atomically(resume_file, state.to_dict())
        progress.advance(items, state)

    try:
        with progress:
            summary = momento.run(
                Backfill(
                    settings,
                    momento,
                    table,
                    dynamodb=dynamodb,
                    rate=args.rate,
                    dead_letters=DeadLetterQueue(settings.dlq_url) if settings.dlq_url else None,
                    on_page=checkpoint,
                ).run(state)
            )
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with --resume {resume_file}", file=sys.stderr)
        return 130
    finally:
        momento.close()
    _write_atomically(resume_file, state.to_dict())
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.text())
    if not summary.complete:
        print(f"continue with: python -m stream_processor.backfill --resume {resume_file}", file=sys.stderr)
    return 0 if summary.complete else 1


def _write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write the resume file so that an interruption leaves the old or the new state, never half of one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


class _Progress:
    """A rich progress bar when stdout is a terminal, log lines (at most one per 5 s) otherwise."""

    def __init__(self, total: int | None, done: int) -> None:
        self.total = total or None
        self.done = done
        self._bar: Any = None
        self._last_log = 0.0

    def __enter__(self) -> _Progress:
        if sys.stdout.isatty():
            try:
                from rich.progress import Progress  # a CLI-only dependency: never imported on Lambda
            except ImportError:
                return self
            self._bar = Progress()
            self._bar.start()
            self._task = self._bar.add_task("backfill", total=self.total, completed=self.done)
        return self

    def advance(self, items: int, state: BackfillState) -> None:
        self.done += items
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif time.monotonic() - self._last_log >= 5.0 or state.complete:
            self._last_log = time.monotonic()
            logger.info(
                "backfill progress",
                extra={"items": self.done, "approximateTotal": self.total, "complete": state.complete},
            )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


if __name__ == "__main__":
    sys.exit(main())
