"""The redrive run: drain the dead-letter queue into a correct cache, message by message.

For each message: read the stream records it is about, group them by cache key, read every key's item (strongly
consistent), and bring each key in line with ``KeySync.resync`` (write, re-read until the item holds still, publish
every record with ``"redriven": true``). A message is deleted only when every key in it is resynced and every record
published; a record that fails for good (an item still too large for the cache, a message that cannot be built) is
sent back to the queue as a poison record with the current reason.

What stays in the queue, and why (each kept message is listed in the summary with its reason):

- a range the stream no longer holds (older than the 24-hour retention: TrimmedDataAccessException, the stream or
  shard is gone, or the first record returned is past the range's start): the summary points at the backfill;
- a key whose table read or Momento calls still fail after retries, or whose item kept changing under the redrive;
  a systemic Momento failure (authentication, permission, missing cache) also stops the run;
- a record with no readable key, and a message of any other shape.

Messages that stay are made visible again at the end of the run (visibility timeout 0). A dry run reads the queue,
the stream and the table, reports what it would do and changes nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stream_processor.config import Settings
from stream_processor.dead_letters import POISON_KIND, poison_message_body
from stream_processor.key_sync import CacheCalls, KeySync, for_each_key
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.momento_errors import FailureKind
from stream_processor.observability import logger
from stream_processor.planner import ChangeRules, ItemRead, PoisonRecord, read_batch
from stream_processor.redrive.queue_messages import UnusableMessage, affected_records
from stream_processor.redrive.resync import KeyWork
from stream_processor.redrive.summary import MessageOutcome, RedriveSummary
from stream_processor.retries import Backoff, Deadline
from stream_processor.stream_records import RangeUnavailable, StreamReadError
from stream_processor.table_reads import TableReader, TableReadError

__all__ = ["Redrive", "RedriveOptions"]

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
            while (stop := self._stop_reason(summary, options, context)) is None:
                wanted = _SQS_BATCH
                if options.max_messages is not None:
                    wanted = min(wanted, options.max_messages - summary.messages_read)
                messages = (
                    self.sqs.receive_message(
                        QueueUrl=options.queue_url,
                        MaxNumberOfMessages=wanted,
                        WaitTimeSeconds=options.wait_seconds,
                        VisibilityTimeout=options.visibility_timeout_seconds,
                    ).get("Messages")
                    or []
                )
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
                    summary.add(outcome)
                    if not outcome.deleted or options.dry_run:
                        to_release.append(message)
            summary.stopped = stop
        finally:
            self._release(options.queue_url, to_release)
        logger.info("redrive finished", extra=summary.to_dict(with_keys=False))
        return summary

    def _stop_reason(self, summary: RedriveSummary, options: RedriveOptions, context: Any) -> str | None:
        if options.max_messages is not None and summary.messages_read >= options.max_messages:
            return f"maxMessages ({options.max_messages}) reached"
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining) and remaining() / 1000.0 < options.stop_margin_seconds:
            return "the invocation's remaining time ran low: invoke the redrive again"
        if self._systemic:
            return f"Momento refuses every request: {self._systemic}"
        return None

    # -- one message ---------------------------------------------------------------------------------------------

    def _redrive_message(
        self, message: Mapping[str, Any], options: RedriveOptions, context: Any, sent_ids: set[str]
    ) -> MessageOutcome:
        outcome = MessageOutcome(message_id=message["MessageId"], kind="unknown")
        try:
            affected = affected_records(message.get("Body"), self.streams)
        except RangeUnavailable as unavailable:
            outcome.reason = str(unavailable)
            outcome.backfill_needed = True
            return _kept(outcome, "stream range unavailable: message kept")
        except (UnusableMessage, StreamReadError) as unusable:
            outcome.reason = str(unusable)
            return _kept(outcome)
        outcome.kind = affected.kind

        batch = read_batch(affected.records, self.rules)
        if batch.rejected:
            outcome.reason = f"configuration: {batch.rejected[0].cause}"
            logger.error("message kept: configuration error", extra=outcome.to_dict(with_keys=False))
            return outcome
        work = [KeyWork.of(cache_key, entries, self.table_name) for cache_key, entries in batch.by_key.items()]
        poison = list(batch.unkeyed_poison)
        try:
            items = self.table_reader.read([ItemRead(w.cache_key, w.table, w.keys) for w in work]) if work else {}
        except TableReadError as error:
            outcome.reason = f"table read failed: {error}"
            return _kept(outcome)

        now = self.clock()
        if options.dry_run:
            for w in work:
                item = items.get(w.cache_key)
                outcome.keys[w.cache_key] = "delete" if self.rules.cache_write(item, now) is None else "set"
                outcome.published += sum(change.message is not None for change in w.changes(item, self.rules, now))
                poison.extend(w.unpublishable)
            outcome.poison_resent = len(poison)
            outcome.deleted = True  # would be
            return outcome

        self._resync(work, items, now, self._deadline(context, options), outcome, poison)
        if outcome.failed_keys:
            causes = "; ".join(dict.fromkeys(outcome.failed_keys.values()))
            outcome.reason = f"{len(outcome.failed_keys)} of {len(work)} keys not resynced yet: {causes}"
            return _kept(outcome)
        if poison:
            unsent = self._resend_poison(options.queue_url, poison, sent_ids)
            outcome.poison_resent = len(poison) - len(unsent)
            if unsent:
                outcome.reason = f"could not send still-failing poison records back to the queue: {unsent[0]}"
                return _kept(outcome)
            outcome.reason = "still poison, re-sent with the current reason: " + "; ".join(p.reason for p in poison)
        try:
            self.sqs.delete_message(QueueUrl=options.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except (ClientError, BotoCoreError) as error:  # done anyway: redriving it again later is harmless
            outcome.reason = f"done, but the delete failed ({type(error).__name__}): it will be redriven again"
            return outcome
        outcome.deleted = True
        return outcome

    def _resync(
        self,
        work: Sequence[KeyWork],
        items: Mapping[str, Any],
        now: float,
        deadline: Deadline,
        outcome: MessageOutcome,
        poison: list[PoisonRecord],
    ) -> None:
        """Resync every key of a message; the keys that failed (which keep it in the queue) go to ``failed_keys``."""
        assert self.momento is not None
        calls = CacheCalls(self.momento, lambda: deadline, backoff=self.backoff, rng=self.rng, sleep=self.sleep)
        sync = KeySync(calls)
        live = [w.live_key(items.get(w.cache_key), self.rules, now, self.table_reader) for w in work]
        results = self.momento.run(for_each_key(live, sync.resync, concurrency=self.settings.max_in_flight))
        for w, result in zip(work, results, strict=True):
            if result.written:
                outcome.keys[w.cache_key] = result.action or ""
            outcome.published += result.published
            outcome.rechecks += result.rechecks
            outcome.rewrites += result.rewrites
            poison.extend(result.poison)
            poison.extend(w.unpublishable)
            if result.failure is not None:
                outcome.failed_keys[w.cache_key] = result.failure.cause
                if result.failure.kind is FailureKind.SYSTEMIC:
                    self._systemic = result.failure.cause

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

    def _deadline(self, context: Any, options: RedriveOptions) -> Deadline:
        if callable(getattr(context, "get_remaining_time_in_millis", None)):
            return Deadline.from_context(context)
        end = self.clock() + options.retry_seconds
        return Deadline(lambda: int((end - self.clock()) * 1000))


def _kept(outcome: MessageOutcome, message: str = "message kept") -> MessageOutcome:
    logger.warning(message, extra=outcome.to_dict(with_keys=False))
    return outcome
