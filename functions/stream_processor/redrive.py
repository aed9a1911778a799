"""Redrive: bring the cache back in line with the table for everything in the dead-letter queue, then publish.

The queue holds two kinds of messages:

- Lambda's on-failure records for discarded stream batches: metadata only (``DDBStreamBatchInfo``: shard, first and
  last sequence numbers, stream ARN), validated with Powertools' ``DynamoDBStreamLambdaOnFailureDestinationModel``.
  The records are re-read from the stream (GetShardIterator AT_SEQUENCE_NUMBER, then GetRecords until past the last
  sequence number) to learn which keys were affected.
- Poison records ``{"kind": "poison-record", "reason": ..., "record": ...}`` (from the stream processor, and from the
  backfill for items the cache refuses), with the record inside.

Old images are never replayed: they could overwrite newer state. Each affected key is resynced from the source of
truth, the table: its current item, read with a strongly consistent read (the same ``TableReader`` the stream
processor uses), goes through the stream's key, value and TTL rules (set; delete when the item is gone or expired).
Then every affected record of the key is published, in stream order, as its change message with ``"redriven": true``.
A queue message is deleted only when every key in it is resynced and every record published.

Resync messages: a record that does not parse as a change but whose key is known (an unknown eventName, a malformed
image, a backfill poison item) is published as a message describing the resynced state, in the change message
format: ``eventName`` ``"RESYNC"``, the record's ``eventID`` and ``sequenceNumber`` when it has them (else ""),
``table``, ``key``, ``keys``, ``newImage`` = the item now in the table (absent when the table no longer holds it),
``expired`` (true when the item's TTL has passed, so the cache entry was deleted), ``"redriven": true``; same
attribute projection and size limit. A subscriber can treat it as a MODIFY when ``newImage`` is present, else a REMOVE.

What stays in the queue, and why (each kept message is listed in the summary with its reason):

- a range the stream no longer holds (older than the 24-hour retention: TrimmedDataAccessException, the stream or
  shard is gone, or the first record returned is past the range's start): the summary points at the backfill, which
  rebuilds the cache from the table;
- a key whose table read or Momento calls still fail after retries; a systemic Momento failure (authentication,
  permission, missing cache) also stops the run;
- a record that still fails for good (the item is still too large for the cache, no key can be read from it, its
  message cannot fit the topic): it is sent back to the queue as a poison record with the current reason and the old
  message is deleted;
- a message of any other shape.

Messages that stay are made visible again at the end of the run (visibility timeout 0). A dry run reads the queue,
the stream and the table, reports what it would do and changes nothing (every received message is made visible
again). Run it as ``stream_processor.redrive.handler`` (queue from ``DLQ_URL``; event ``{"dryRun": true,
"maxMessages": N}``) or ``python -m stream_processor.redrive --queue-url URL [--dry-run] [--max-messages N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamLambdaOnFailureDestinationModel
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from stream_processor.changes import Change, PoisonRecordError, sequence_number_of, table_name_of
from stream_processor.config import ConfigurationError, Settings, load_settings
from stream_processor.dead_letters import POISON_KIND, poison_message_body
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.observability import logger, logs_on_stderr
from stream_processor.planner import ChangeRules, ItemRead, PoisonRecord, read_batch
from stream_processor.retries import Backoff, Deadline, call_with_retries
from stream_processor.stream_records import RangeUnavailable, StreamReadError, lambda_record, read_stream_range
from stream_processor.table_reads import TableReader, TableReadError

__all__ = [
    "BACKFILL_HINT",
    "MessageOutcome",
    "RangeUnavailable",
    "Redrive",
    "RedriveOptions",
    "RedriveSummary",
    "handler",
    "lambda_record",
    "main",
    "read_stream_range",
]

BACKFILL_HINT = (
    "the stream no longer holds some ranges (24-hour retention): rebuild the cache from the table with "
    "`python -m stream_processor.backfill --table NAME` (or the backfill function), then delete those messages"
)
RESYNC_EVENT = "RESYNC"
_GET_RECORDS_LIMIT = 1000
_SQS_BATCH = 10


@dataclass(frozen=True)
class RedriveOptions:
    """One run: the queue, whether to change anything, how many messages at most, and SQS timings."""

    queue_url: str
    dry_run: bool = False
    max_messages: int | None = None
    wait_seconds: int = 1
    visibility_timeout_seconds: int = 900
    #: Stop receiving when the Lambda invocation has less than this left (a message's work must fit in it).
    stop_margin_seconds: float = 30.0
    #: Without a Lambda context (the CLI), how long one message's Momento calls may keep retrying.
    retry_seconds: float = 60.0


@dataclass
class MessageOutcome:
    """What happened to one queue message."""

    message_id: str
    kind: str
    deleted: bool = False
    reason: str | None = None
    keys: dict[str, str] = field(default_factory=dict)  # cache key -> "set" / "delete" (done, or would be done)
    published: int = 0
    poison_resent: int = 0
    backfill_needed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messageId": self.message_id, "kind": self.kind, "deleted": self.deleted}
        if self.reason:
            out["reason"] = self.reason
        out["keys"] = self.keys
        out["published"] = self.published
        if self.poison_resent:
            out["poisonResent"] = self.poison_resent
        return out


@dataclass
class RedriveSummary:
    """The run's counts (in a dry run: what would be done) and every message that stays, with its reason."""

    queue_url: str
    dry_run: bool
    messages_read: int = 0
    keys_resynced: int = 0
    messages_published: int = 0
    messages_deleted: int = 0
    poison_resent: int = 0
    stopped: str | None = None
    messages: list[MessageOutcome] = field(default_factory=list)

    @property
    def kept(self) -> list[MessageOutcome]:
        """Messages that stay in the queue: as they were, or re-sent as poison records with the current reason."""
        return [outcome for outcome in self.messages if not outcome.deleted or outcome.poison_resent]

    @property
    def backfill_needed(self) -> bool:
        return any(outcome.backfill_needed for outcome in self.messages)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "queueUrl": self.queue_url,
            "dryRun": self.dry_run,
            "messagesRead": self.messages_read,
            "keysResynced": self.keys_resynced,
            "messagesPublished": self.messages_published,
            "messagesDeleted": self.messages_deleted,
            "poisonResent": self.poison_resent,
            "kept": [{"messageId": o.message_id, "kind": o.kind, "reason": o.reason} for o in self.kept],
            "messages": [outcome.to_dict() for outcome in self.messages],
        }
        if self.stopped:
            out["stopped"] = self.stopped
        if self.backfill_needed:
            out["hint"] = BACKFILL_HINT
        return out

    def text(self) -> str:
        """A readable report for the terminal."""
        would = "would be " if self.dry_run else ""
        lines = [
            f"Redrive of {self.queue_url}{' (dry run: nothing changed)' if self.dry_run else ''}",
            f"  messages read:       {self.messages_read}",
            f"  keys {would}resynced:   {self.keys_resynced}",
            f"  messages {would}published: {self.messages_published}",
            f"  queue messages {would}deleted: {self.messages_deleted}",
            f"  poison records {would}re-sent: {self.poison_resent}",
            f"  queue messages kept: {len(self.kept)}",
        ]
        lines += [f"    - {o.message_id} ({o.kind}): {o.reason}" for o in self.kept]
        if self.stopped:
            lines.append(f"  stopped early: {self.stopped}")
        if self.backfill_needed:
            lines.append(f"  hint: {BACKFILL_HINT}")
        return "\n".join(lines)


@dataclass
class _KeyWork:
    """One affected cache key of a message: where its item lives, and its entries in stream order."""

    cache_key: str
    table: str
    keys: Mapping[str, Any]
    entries: list[Change | PoisonRecord]


@dataclass
class _KeyResult:
    action: str
    resynced: bool = False
    published: int = 0
    poison: list[PoisonRecord] = field(default_factory=list)
    failure: CallFailure | None = None


class Redrive:
    """Drains the dead-letter queue into a correct cache: resync each affected key from the table, then publish."""

    def __init__(
        self,
        settings: Settings,
        momento: MomentoRuntime | None,
        *,
        sqs: Any = None,
        streams: Any = None,
        table_reader: TableReader | None = None,
        table_name: str | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.rules = ChangeRules.from_settings(settings)
        self.momento = momento
        self._sqs = sqs
        self._streams = streams
        self.table_reader = table_reader or TableReader()
        self.table_name = table_name
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.clock = clock
        self.sleep = sleep
        self._systemic: str | None = None

    @property
    def sqs(self):
        if self._sqs is None:
            import boto3

            self._sqs = boto3.client("sqs")
        return self._sqs

    @property
    def streams(self):
        if self._streams is None:
            import boto3

            self._streams = boto3.client("dynamodbstreams")
        return self._streams

    def run(self, options: RedriveOptions, context: Any = None) -> RedriveSummary:
        """Receive and redrive messages until the queue is empty, ``max_messages`` are read, or time runs low."""
        if self.momento is None and not options.dry_run:
            raise ValueError("a redrive that changes the cache needs a Momento runtime")
        summary = RedriveSummary(queue_url=options.queue_url, dry_run=options.dry_run)
        self._systemic = None
        sent_ids: set[str] = set()  # poison re-sent by this run: seen again, they are left for the next run
        to_release: list[dict[str, Any]] = []
        try:
            while True:
                wanted = _SQS_BATCH
                if options.max_messages is not None:
                    wanted = min(wanted, options.max_messages - summary.messages_read)
                    if wanted <= 0:
                        summary.stopped = f"maxMessages ({options.max_messages}) reached"
                        break
                if self._time_low(context, options):
                    summary.stopped = "the invocation's remaining time ran low: invoke the redrive again"
                    break
                if self._systemic:
                    summary.stopped = f"Momento refuses every request: {self._systemic}"
                    break
                response = self.sqs.receive_message(
                    QueueUrl=options.queue_url,
                    MaxNumberOfMessages=wanted,
                    WaitTimeSeconds=options.wait_seconds,
                    VisibilityTimeout=options.visibility_timeout_seconds,
                )
                messages = response.get("Messages") or []
                if not messages:
                    break
                for message in messages:
                    if message["MessageId"] in sent_ids or self._systemic:
                        to_release.append(message)  # re-sent by this run, or Momento refuses everything now
                        continue
                    summary.messages_read += 1
                    try:
                        outcome = self._redrive_message(message, options, context, sent_ids)
                    except Exception as error:  # one broken message must not stop the others
                        logger.exception("redrive of a message failed: message kept")
                        outcome = MessageOutcome(
                            message["MessageId"], "unknown", reason=f"unexpected error: {type(error).__name__}: {error}"
                        )
                    summary.messages.append(outcome)
                    summary.keys_resynced += len(outcome.keys)
                    summary.messages_published += outcome.published
                    summary.poison_resent += outcome.poison_resent
                    summary.messages_deleted += outcome.deleted
                    if not outcome.deleted or options.dry_run:
                        to_release.append(message)
        finally:
            self._release(options.queue_url, to_release)
        logger.info("redrive finished", extra=summary.to_dict())
        return summary

    # -- one message ---------------------------------------------------------------------------------------------

    def _redrive_message(
        self, message: Mapping[str, Any], options: RedriveOptions, context: Any, sent_ids: set[str]
    ) -> MessageOutcome:
        outcome = MessageOutcome(message_id=message["MessageId"], kind="unknown")
        try:
            body = json.loads(message.get("Body") or "")
        except ValueError:
            body = None
        try:
            records = self._affected_records(body, outcome)
        except RangeUnavailable as unavailable:
            outcome.reason = str(unavailable)
            outcome.backfill_needed = True
            logger.warning("stream range unavailable: message kept", extra=outcome.to_dict())
            return outcome
        except (_Unusable, StreamReadError) as unusable:
            outcome.reason = str(unusable)
            logger.warning("message kept", extra=outcome.to_dict())
            return outcome

        batch = read_batch(records, self.rules)
        if batch.rejected:
            outcome.reason = f"configuration: {batch.rejected[0].cause}"
            logger.error("message kept: configuration error", extra=outcome.to_dict())
            return outcome
        work = [self._key_work(cache_key, entries) for cache_key, entries in batch.by_key.items()]
        poison = list(batch.unkeyed_poison)
        try:
            items = self.table_reader.read([ItemRead(w.cache_key, w.table, w.keys) for w in work]) if work else {}
        except TableReadError as error:
            outcome.reason = f"table read failed: {error}"
            logger.warning("message kept", extra=outcome.to_dict())
            return outcome

        now = self.clock()
        if options.dry_run:
            for w in work:
                outcome.keys[w.cache_key] = _action(self.rules.cache_write(items.get(w.cache_key), now))
                outcome.published += sum(
                    self._message(w, entry, items.get(w.cache_key), now)[0] is not None for entry in w.entries
                )
            outcome.poison_resent = len(poison)
            outcome.deleted = True  # would be
            return outcome

        assert self.momento is not None
        deadline = self._deadline(context, options)
        results = self.momento.run(self._resync_all(work, items, now, deadline))
        failures: list[str] = []
        for w, result in zip(work, results, strict=True):
            if result.resynced:
                outcome.keys[w.cache_key] = result.action
            outcome.published += result.published
            poison.extend(result.poison)
            if result.failure is not None:
                failures.append(f"{w.cache_key}: {result.failure.cause}")
                if result.failure.kind is FailureKind.SYSTEMIC:
                    self._systemic = result.failure.cause
        if failures:
            outcome.reason = "Momento calls still failing after retries: " + "; ".join(failures)
            logger.warning("message kept", extra=outcome.to_dict())
            return outcome
        if poison:
            unsent = self._resend_poison(options.queue_url, poison, sent_ids)
            outcome.poison_resent = len(poison) - len(unsent)
            if unsent:
                outcome.reason = f"could not send still-failing poison records back to the queue: {unsent[0]}"
                logger.warning("message kept", extra=outcome.to_dict())
                return outcome
            outcome.reason = "still poison, re-sent with the current reason: " + "; ".join(p.reason for p in poison)
        try:
            self.sqs.delete_message(QueueUrl=options.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except (ClientError, BotoCoreError) as error:  # done anyway: redriving it again later is harmless
            outcome.reason = f"done, but the delete failed ({type(error).__name__}): it will be redriven again"
            return outcome
        outcome.deleted = True
        return outcome

    def _affected_records(self, body: Any, outcome: MessageOutcome) -> list[Any]:
        """The stream records a message is about: in the message (poison) or re-read from the stream (on-failure)."""
        if isinstance(body, Mapping) and body.get("kind") == POISON_KIND and "record" in body:
            outcome.kind = POISON_KIND
            return [body["record"]]
        if isinstance(body, Mapping) and "DDBStreamBatchInfo" in body:
            outcome.kind = "on-failure"
            try:
                info = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(body).ddb_stream_batch_info
            except ValidationError as error:
                raise _Unusable(f"not a valid Lambda on-failure record: {_first_error(error)}") from None
            return read_stream_range(
                self.streams,
                stream_arn=info.stream_arn,
                shard_id=info.shard_id,
                start_sequence_number=info.start_sequence_number,
                end_sequence_number=info.end_sequence_number,
            )
        raise _Unusable("neither a Lambda on-failure record nor a poison record: left for an operator")

    def _key_work(self, cache_key: str, entries: list[Change | PoisonRecord]) -> _KeyWork:
        first = entries[0]
        if isinstance(first, Change):
            table, keys = first.table, first.keys
        else:  # the planner keyed this poison record, so its keys and ARN are readable
            table = table_name_of(first.record.get("eventSourceARN")) or ""
            keys = first.record["dynamodb"]["Keys"]
        return _KeyWork(cache_key, self.table_name or table, keys, entries)

    # -- Momento -------------------------------------------------------------------------------------------------

    async def _resync_all(
        self, work: Sequence[_KeyWork], items: Mapping[str, Any], now: float, deadline: Deadline
    ) -> list[_KeyResult]:
        slots = asyncio.Semaphore(self.settings.max_in_flight)

        async def one(w: _KeyWork) -> _KeyResult:
            async with slots:
                return await self._resync_key(w, items.get(w.cache_key), now, deadline)

        return list(await asyncio.gather(*(one(w) for w in work)))

    async def _resync_key(self, w: _KeyWork, item: Any, now: float, deadline: Deadline) -> _KeyResult:
        momento = self.momento
        assert momento is not None
        write = self.rules.cache_write(item, now)
        result = _KeyResult(_action(write))
        too_large: Change | PoisonRecord | None = None
        if write is None:
            failure = await self._call(lambda: momento.delete(w.cache_key), deadline, momento.cache_call_seconds)
        else:
            failure = await self._call(
                lambda: momento.set(w.cache_key, write.value, write.ttl_ms), deadline, momento.cache_call_seconds
            )
            if failure is not None and failure.kind is FailureKind.POISON:
                # The cache still refuses the item: delete the key so it never holds a state the table has left.
                too_large = w.entries[-1]
                result.poison.append(_poison(too_large, failure.cause))
                result.action = "delete"
                failure = await self._call(lambda: momento.delete(w.cache_key), deadline, momento.cache_call_seconds)
        if failure is not None:
            result.failure = failure
            return result
        result.resynced = True
        for entry in w.entries:
            if entry is too_large:
                continue
            message, poison_reason = self._message(w, entry, item, now)
            if message is None:
                result.poison.append(_poison(entry, poison_reason or "message cannot be built"))
                continue
            failure = await self._call(lambda m=message: momento.publish(m), deadline, momento.publish_call_seconds)
            if failure is None:
                result.published += 1
            elif failure.kind is FailureKind.POISON:
                result.poison.append(_poison(entry, failure.cause))
            else:
                result.failure = failure  # later changes of the key wait for the next redrive, in order
                return result
        return result

    def _message(
        self, w: _KeyWork, entry: Change | PoisonRecord, item: Any, now: float
    ) -> tuple[bytes | None, str | None]:
        """The message to publish for an entry (its change message, or a resync message), or the poison reason."""
        change = entry if isinstance(entry, Change) else _resync_change(w, entry, item, self.rules, now)
        try:
            return self.rules.messages.change_message(change, w.cache_key, redriven=True), None
        except PoisonRecordError as error:
            return None, error.reason

    async def _call(
        self, operation: Callable[[], Awaitable[CallFailure | None]], deadline: Deadline, worst_call: float
    ) -> CallFailure | None:
        return await call_with_retries(
            operation, deadline, worst_call, backoff=self.backoff, rng=self.rng, sleep=self.sleep
        )

    # -- SQS and time --------------------------------------------------------------------------------------------

    def _resend_poison(self, queue_url: str, poison: Sequence[PoisonRecord], sent_ids: set[str]) -> list[str]:
        """Send still-failing poison records back with their current reason; the errors of those not sent."""
        errors = []
        for record in poison:
            try:
                response = self.sqs.send_message(
                    QueueUrl=queue_url,
                    MessageBody=poison_message_body(record),
                    MessageAttributes={"kind": {"DataType": "String", "StringValue": POISON_KIND}},
                )
            except (ClientError, BotoCoreError) as error:
                errors.append(f"{type(error).__name__}: {error}")
                continue
            sent_ids.add(response["MessageId"])
        return errors

    def _release(self, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Make kept messages visible again now rather than after the visibility timeout."""
        for start in range(0, len(messages), _SQS_BATCH):
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for index, message in enumerate(messages[start : start + _SQS_BATCH])
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:  # they reappear after the visibility timeout anyway
                logger.warning("could not make kept messages visible again", extra={"error": str(error)})

    def _time_low(self, context: Any, options: RedriveOptions) -> bool:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return callable(remaining) and remaining() / 1000.0 < options.stop_margin_seconds

    def _deadline(self, context: Any, options: RedriveOptions) -> Deadline:
        if callable(getattr(context, "get_remaining_time_in_millis", None)):
            return Deadline.from_context(context)
        end = self.clock() + options.retry_seconds
        return Deadline(lambda: int((end - self.clock()) * 1000))


class _Unusable(Exception):
    """A message the redrive cannot act on (unknown shape, invalid on-failure record)."""


def _action(write: Any) -> str:
    return "delete" if write is None else "set"


def _poison(entry: Change | PoisonRecord, reason: str) -> PoisonRecord:
    """The entry's record as a poison record with the current reason."""
    return PoisonRecord(sequence_number_of(entry.record), reason, entry.record)


def _resync_change(w: _KeyWork, entry: PoisonRecord, item: Any, rules: ChangeRules, now: float) -> Change:
    """A change describing the resynced state of a key whose record does not parse (see the module docstring)."""
    record = entry.record if isinstance(entry.record, Mapping) else {}
    event_id = record.get("eventID")
    first = w.entries[0]
    table = first.table if isinstance(first, Change) else table_name_of(record.get("eventSourceARN")) or w.table
    return Change(
        record=record,
        sequence_number=sequence_number_of(record) or "",
        event_id=event_id if isinstance(event_id, str) else "",
        event_name=RESYNC_EVENT,  # type: ignore[arg-type]  # the documented resync message, not a stream event
        table=table,
        keys=w.keys,
        new_image=item,
        old_image=None,
        approximate_creation_time=None,
        stream_view_type=None,
        removed_by_ttl=item is not None and rules.cache_write(item, now) is None,
    )


def _first_error(error: ValidationError) -> str:
    detail = error.errors()[0]
    return f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}"


# -- the stream ----------------------------------------------------------------------------------------------------


# -- entry points --------------------------------------------------------------------------------------------------


@cache
def redrive() -> Redrive:
    """The container's redrive, built once (configuration errors name the variable)."""
    settings = load_settings()
    momento = MomentoRuntime.from_settings(settings)
    return Redrive(settings, momento, table_name=settings.table_name)


@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any] | None, context: Any) -> dict[str, Any]:
    """Redrive the queue named by ``DLQ_URL``; returns the summary.

    Event (all optional): ``dryRun`` (report only), ``maxMessages`` (read at most this many), ``waitSeconds`` (SQS
    long-poll wait per receive, default 1).
    """
    event = event or {}
    processor = redrive()
    if not processor.settings.dlq_url:
        raise ConfigurationError("DLQ_URL is required by the redrive: set it to the dead-letter queue's URL")
    options = RedriveOptions(
        queue_url=processor.settings.dlq_url,
        dry_run=bool(event.get("dryRun", False)),
        max_messages=_positive_or_none(event.get("maxMessages"), "maxMessages"),
        wait_seconds=int(event.get("waitSeconds", 1)),
    )
    return processor.run(options, context).to_dict()


def _positive_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: redrive a queue; exit status 0 when nothing was kept (or a dry run), 1 when messages stay."""
    with logs_on_stderr():
        return _cli(argv)


def _cli(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stream_processor.redrive",
        description="Resync the cache from the table for every DLQ message, publish redriven change messages, "
        "and delete the messages that are done. Momento settings come from the function's environment variables.",
    )
    parser.add_argument("--queue-url", default=os.environ.get("DLQ_URL"), help="the DLQ (default: $DLQ_URL)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be done; change nothing")
    parser.add_argument("--max-messages", type=int, help="read at most this many messages")
    parser.add_argument("--wait-seconds", type=int, default=1, help="SQS long-poll wait per receive (0-20)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not args.queue_url:
        parser.error("--queue-url is required (or set DLQ_URL)")
    if args.max_messages is not None and args.max_messages <= 0:
        parser.error("--max-messages must be a positive integer")
    try:
        settings = load_settings()
    except ConfigurationError as error:
        parser.exit(2, f"configuration error: {error}\n")
    momento = None
    if not args.dry_run:
        momento = MomentoRuntime.from_settings(settings)
    try:
        summary = Redrive(settings, momento, table_name=settings.table_name).run(
            RedriveOptions(
                queue_url=args.queue_url,
                dry_run=args.dry_run,
                max_messages=args.max_messages,
                wait_seconds=args.wait_seconds,
            )
        )
    finally:
        if momento is not None:
            momento.close()
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.text())
    return 0 if args.dry_run or not summary.kept else 1


if __name__ == "__main__":
    sys.exit(main())
