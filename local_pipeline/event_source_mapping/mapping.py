"""Lambda's DynamoDB Streams event source mapping, emulated: drives a handler exactly as Lambda's mapping would.

moto cannot run Lambda functions without Docker and has no event source mapping, so to run the whole pipeline
locally, and to prove that no change is lost, the project drives the real handler through this emulator. It reads
the table's stream with ``DescribeStream`` / ``GetShardIterator`` / ``GetRecords``, turns the records into the
event Lambda sends, and applies the mapping's documented semantics:

- Shards are read in order; a child shard only after its parent is finished. ``FilterCriteria``
  (``filtering.py``): records no filter matches are dropped before batching and checkpointed, never delivered.
- ``ParallelizationFactor`` N: up to N batches of a shard in flight at once, in order per item key (as Lambda
  documents). Each shard's records are routed to N lanes by their item key (``lanes.py``), so one item's records
  share a lane and keep stream order. Each lane is an ordered sub-stream with its own batches
  (``BatchSize`` records of that lane), partial-failure checkpoint, bisection, retries and on-failure messages
  (whose ``DDBStreamBatchInfo`` names the first and last sequence numbers of the discarded lane batch, so its range
  can also cover records of other lanes). The shard's checkpoint is the last record before the first one a lane
  has not finished.
- Concurrency is modelled as interleaving: the handler runs one batch at a time (one container, one event loop).
  A round gives each lane that has records one batch, as Lambda has at most one batch per lane, N per shard, in
  flight; the order of a shard's lanes within a round is drawn from ``rng`` (a seeded ``random.Random``, default
  ``Random(0)``), so a seed fixes an interleaving, another seed gives another one, and one key is never reordered.
  Shards take their turns in the order they were discovered. ``deliver_one()`` is one step (one invocation),
  ``poll_once()`` the rest of the current round (or a new one), ``run_until_caught_up()`` rounds until nothing is left.
- Responses (``responses.py``): ``ReportBatchItemFailures`` partial responses, empty responses as success, and
  malformed ones failing the batch; a handler exception, a timeout or a return value that is not JSON fails the
  whole batch (a function error).
- ``BisectBatchOnFunctionError``: a batch that failed whole is split in two halves, retried in order; with a partial
  response the batch is split at the reported record. Splitting consumes no retry; a failure that cannot split
  (one record, or a partial response reporting the batch's first record) counts as a retry.
- ``MaximumRetryAttempts`` (-1: until the record expires) and ``MaximumRecordAgeInSeconds`` (records older than it,
  by ``ApproximateCreationDateTime`` against the clock, are not delivered). Discarded records are skipped and one
  message per discarded batch goes to the SQS on-failure destination in Lambda's format (``on_failure.py``).

Decisions where AWS documents nothing: a batch's halves and remainder inherit its retry and invocation counts; a
malformed partial response may be bisected like a function error; a batch discarded before any invocation reports
``approximateInvokeCount`` 0 with a ``responseContext`` of status 200 (kept so Powertools' model parses it).

Limits: lanes interleave at batch granularity only (two invocations never overlap, so nothing here runs the
handler concurrently with itself); a retried lane spends its turns on retries while the others move on, but a lane
never gets two turns in a round; the mapping reads ahead up to ``BatchSize`` x N records per shard and a lane's
batch holds what has been read of that lane (it can be short while more of its records lie further on);
``MaximumBatchingWindowInSeconds``, the 6 MB payload limit and stream retention (24 h) are not emulated, and with
unlimited retries ``max_invocations`` bounds a run.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from local_pipeline.lambda_context import LambdaContext, new_log_stream_name
from stream_processor.stream_records import epoch_seconds

from .lanes import Batch, Lane, Shard, sequence_number
from .on_failure import FailureCondition, on_failure_message
from .reader import StreamReader
from .reports import DiscardedBatch, Invocation, MappingReport
from .responses import InvocationOutcome, Verdict, judge_response
from .settings import MappingSettings

__all__ = ["Handler", "StreamEventSourceMapping"]

LOG = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], LambdaContext], Any]


@dataclass(frozen=True)
class _Result:
    request_id: str
    verdict: Verdict
    function_error: str | None = None


class StreamEventSourceMapping:
    """Delivers a DynamoDB stream's records to ``handler`` with Lambda's event source mapping semantics."""

    def __init__(
        self,
        stream_arn: str,
        handler: Handler,
        settings: MappingSettings | None = None,
        *,
        streams_client: Any = None,
        sqs_client: Any = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.stream_arn = stream_arn
        self.settings = settings or MappingSettings()
        self._region = stream_arn.split(":")[3]
        self._handler = handler
        self._streams = streams_client or boto3.client("dynamodbstreams", region_name=self._region)
        self._sqs = sqs_client
        self._clock = clock
        self._rng = rng if rng is not None else random.Random(0)
        self._reader = StreamReader(stream_arn, self.settings, self._streams)
        self._round: deque[tuple[Shard, Lane]] = deque()  # the lanes still to deliver a batch in this round
        # One execution environment for the mapping's life, like a warm container.
        self._log_stream_name = new_log_stream_name(clock())
        if self.settings.starting_position == "LATEST":
            # LATEST means "after the mapping was created": pin the position now, not at the first poll.
            self._reader.refresh()

    @property
    def checkpoints(self) -> dict[str, str | None]:
        """Each known shard's last processed (delivered, discarded or filtered out) sequence number."""
        return {shard_id: shard.checkpoint for shard_id, shard in self._reader.shards.items()}

    def run_until_caught_up(self, max_invocations: int = 10_000) -> MappingReport:
        """Deliver every record currently in the stream, then return; stops early after ``max_invocations``."""
        report = MappingReport()
        while report.caught_up and (self._round or self._plan_round(report)):
            self._step(report, max_invocations)
        return self._finish(report)

    def poll_once(self, max_invocations: int = 10_000) -> MappingReport:
        """One round: a batch for each lane that has records (the rest of the current round if one is under way)."""
        report = MappingReport()
        if self._round or self._plan_round(report):
            while self._round and report.caught_up:
                self._step(report, max_invocations)
        return self._finish(report)

    def deliver_one(self) -> MappingReport:
        """One step: the next lane's batch (at most one invocation); an empty report when there is nothing to do.

        Records discarded for age are reported with the step that met them.
        """
        report = MappingReport()
        if self._round or self._plan_round(report):
            self._step(report, max_invocations=1)
        return self._finish(report)

    def _finish(self, report: MappingReport) -> MappingReport:
        report.checkpoints = self.checkpoints
        return report

    # Rounds

    def _plan_round(self, report: MappingReport) -> bool:
        """Queue one batch per lane with records, lanes shuffled within each shard; False when there is none."""
        listed = self._reader.refresh()
        for shard in list(self._reader.shards.values()):
            if shard.finished or not self._reader.readable(shard, listed):
                continue
            self._reader.fill(shard, report)
            lanes = [lane for lane in shard.lanes if lane.has_work]
            self._rng.shuffle(lanes)
            self._round.extend((shard, lane) for lane in lanes)
        return bool(self._round)

    def _step(self, report: MappingReport, max_invocations: int) -> None:
        """Deliver the round's next lane batch; at the invocation limit it stays first in the round."""
        while self._round:
            shard, lane = self._round[0]
            batch = lane.next_batch(self.settings.batch_size)
            if batch is None:
                self._round.popleft()
                continue
            self._deliver(shard, lane, batch, report, max_invocations)
            if report.caught_up:
                self._round.popleft()
            return

    # Delivery

    def _deliver(self, shard: Shard, lane: Lane, batch: Batch, report: MappingReport, max_invocations: int) -> None:
        expired = self._expired_prefix(batch.records)
        if expired:
            old = batch.part(batch.records[:expired])
            self._discard(shard, lane, old, FailureCondition.RECORD_AGE_EXCEEDED, report)
            batch = batch.part(batch.records[expired:])
            if not batch.records:
                return
        if report.invocations >= max_invocations:
            lane.pending.appendleft(batch)
            report.caught_up = False
            return
        result = self._invoke(shard, lane, batch, report)
        self._settle(shard, lane, batch, result, report)

    def _expired_prefix(self, records: list[dict[str, Any]]) -> int:
        max_age = self.settings.maximum_record_age_seconds
        if max_age == -1:
            return 0
        now = self._clock()
        count = 0
        # Creation times rise along a shard (and so along a lane): the records too old form a prefix of the batch.
        for record in records:
            if now - epoch_seconds(record["dynamodb"]["ApproximateCreationDateTime"]) <= max_age:
                break
            count += 1
        return count

    def _invoke(self, shard: Shard, lane: Lane, batch: Batch, report: MappingReport) -> _Result:
        settings = self.settings
        context = LambdaContext.for_invocation(
            function_arn=settings.function_arn,
            timeout_seconds=settings.function_timeout_seconds,
            memory_size_mb=settings.memory_size_mb,
            log_stream_name=self._log_stream_name,
            clock=self._clock,
        )
        request_id = context.aws_request_id
        batch.invoke_count += 1
        started = self._clock()
        response: Any = None
        failure: str | None = None
        try:
            # The event and the response cross Lambda as JSON: the handler gets its own decoded copy, and a
            # return value that cannot be serialised is a function error (Runtime.MarshalError).
            response = self._handler(json.loads(json.dumps({"Records": batch.records})), context)
            try:
                response = json.loads(json.dumps(response))
            except (TypeError, ValueError) as exc:
                failure = f"Runtime.MarshalError: {exc}"
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            LOG.debug("handler raised", exc_info=True)
        if self._clock() - started > settings.function_timeout_seconds:
            error = f"Task timed out after {settings.function_timeout_seconds} seconds"
            result = _Result(request_id, Verdict(InvocationOutcome.TIMEOUT, error=error), "Unhandled")
        elif failure is not None:
            result = _Result(request_id, Verdict(InvocationOutcome.FUNCTION_ERROR, error=failure), "Unhandled")
        else:
            numbers = [sequence_number(record) for record in batch.records]
            verdict = judge_response(response, numbers, report_batch_item_failures=settings.report_batch_item_failures)
            result = _Result(request_id, verdict)
        first, last = sequence_number(batch.records[0]), sequence_number(batch.records[-1])
        outcome = result.verdict.outcome
        report.invocation_log.append(
            Invocation(
                request_id=request_id,
                shard_id=shard.shard_id,
                first_sequence_number=first,
                last_sequence_number=last,
                size=len(batch.records),
                outcome=outcome,
                approximate_invoke_count=batch.invoke_count,
                error=result.verdict.error,
                lane=lane.index,
            )
        )
        if outcome is not InvocationOutcome.SUCCESS:
            error = result.verdict.error
            LOG.warning(
                "batch %s..%s (%d records) on %s lane %d: %s%s",
                *(first, last, len(batch.records), shard.shard_id, lane.index, outcome),
                f" ({error})" if error else "",
            )
        return result

    def _settle(self, shard: Shard, lane: Lane, batch: Batch, result: _Result, report: MappingReport) -> None:
        batch.last_request_id = result.request_id
        batch.last_function_error = result.function_error
        records = batch.records
        bisect = self.settings.bisect_batch_on_function_error
        outcome = result.verdict.outcome
        if outcome is InvocationOutcome.SUCCESS:
            shard.progress.finish(sequence_number(record) for record in records)
            return
        if outcome is InvocationOutcome.PARTIAL_FAILURE:
            index = result.verdict.failed_index or 0
            shard.progress.finish(sequence_number(record) for record in records[:index])
            remainder = batch.part(records[index:])
            if bisect and index > 0:
                lane.pending.appendleft(remainder)  # split at the reported record: no retry consumed
            else:
                self._retry_or_discard(shard, lane, remainder, report)
            return
        if bisect and len(records) > 1:
            middle = len(records) // 2
            lane.pending.appendleft(batch.part(records[middle:]))
            lane.pending.appendleft(batch.part(records[:middle]))
            report.bisections += 1
            return
        self._retry_or_discard(shard, lane, batch, report)

    def _retry_or_discard(self, shard: Shard, lane: Lane, batch: Batch, report: MappingReport) -> None:
        limit = self.settings.maximum_retry_attempts
        if limit == -1 or batch.retries_used < limit:
            batch.retries_used += 1
            lane.pending.appendleft(batch)
            report.batches_retried += 1
        else:
            self._discard(shard, lane, batch, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, report)

    def _discard(
        self, shard: Shard, lane: Lane, batch: Batch, condition: FailureCondition, report: MappingReport
    ) -> None:
        message = on_failure_message(
            condition=condition,
            records=batch.records,
            shard_id=shard.shard_id,
            stream_arn=self.stream_arn,
            function_arn=self.settings.function_arn,
            request_id=batch.last_request_id or str(uuid.uuid4()),
            approximate_invoke_count=batch.invoke_count,
            function_error=batch.last_function_error,
            now=self._clock(),
        )
        queue_url = self.settings.on_failure_queue_url
        if queue_url is not None:
            if self._sqs is None:
                self._sqs = boto3.client("sqs", region_name=self._region)
            self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
        first, last = sequence_number(batch.records[0]), sequence_number(batch.records[-1])
        LOG.warning(
            "discarded %d records %s..%s of %s lane %d (%s)%s",
            *(len(batch.records), first, last, shard.shard_id, lane.index, condition),
            "" if queue_url else "; no on-failure destination",
        )
        shard.progress.finish(sequence_number(record) for record in batch.records)
        report.discarded.append(
            DiscardedBatch(
                condition, shard.shard_id, first, last, len(batch.records), message, queue_url is not None, lane.index
            )
        )
