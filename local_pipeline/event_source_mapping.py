"""Lambda's DynamoDB Streams event source mapping, emulated: drives a handler exactly as Lambda's mapping would.

moto cannot run Lambda functions without Docker and has no event source mapping, so to run the whole pipeline
locally, and to prove that no change is lost, the project drives the real handler through this emulator. It reads
the table's stream with ``DescribeStream`` / ``GetShardIterator`` / ``GetRecords``, turns the records into the
event Lambda sends, and applies the mapping's documented semantics:

- ``BatchSize``; per shard one batch in flight and records in order (``ParallelizationFactor`` 1); a child shard is
  read only after its parent is finished.
- ``ReportBatchItemFailures``: ``None``, ``{}``, a null or empty ``batchItemFailures`` list mean success. Reported
  identifiers checkpoint before the lowest reported sequence number (compared as integers) and the batch is retried
  from that record. An empty or null identifier, a bad key name or any other malformed response fails the whole
  batch.
- A handler exception, a timeout or a return value that is not JSON fails the whole batch (a function error).
- ``BisectBatchOnFunctionError``: a batch that failed whole is split in two halves, retried in order; with a partial
  response the batch is split at the reported record. Splitting consumes no retry; a failure that cannot split
  (one record, or a partial response reporting the batch's first record) counts as a retry.
- ``MaximumRetryAttempts`` (-1: until the record expires) and ``MaximumRecordAgeInSeconds`` (records older than it,
  by ``ApproximateCreationDateTime`` against the clock, are not delivered). Discarded records are skipped and one
  message per discarded batch goes to the SQS on-failure destination in Lambda's format: metadata only
  (``requestContext``, ``responseContext``, ``version``, ``timestamp``, ``DDBStreamBatchInfo``).

Decisions where AWS documents nothing: an identifier that is not in the batch fails it (LocalStack, which checks
its mapping against AWS, does the same); a batch's halves and remainder inherit its retry and invocation counts; a
malformed partial response may be bisected like a function error; a batch discarded before any invocation reports
``approximateInvokeCount`` 0 with a ``responseContext`` of status 200 (kept so Powertools' model parses it). Stream
retention (24 h) is not emulated: with unlimited retries ``max_invocations`` bounds a run.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import boto3
from botocore.exceptions import ClientError

from local_pipeline.lambda_context import LambdaContext, function_name_from_arn, new_log_stream_name
from stream_processor.stream_records import epoch_seconds, lambda_record

__all__ = [
    "DEFAULT_FUNCTION_ARN",
    "DiscardedBatch",
    "FailureCondition",
    "Handler",
    "Invocation",
    "InvocationOutcome",
    "MappingReport",
    "MappingSettings",
    "StreamEventSourceMapping",
    "lambda_record",
    "on_failure_message",
]

LOG = logging.getLogger(__name__)

DEFAULT_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:dynamodb-momento-stream-processor"
GET_RECORDS_LIMIT = 1000  # DynamoDB Streams returns at most 1,000 records per GetRecords call
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")

Handler = Callable[[dict[str, Any], LambdaContext], Any]


class InvocationOutcome(StrEnum):
    """How one invocation ended, as the mapping judges it."""

    SUCCESS = "success"
    PARTIAL_FAILURE = "partial_failure"
    FUNCTION_ERROR = "function_error"
    TIMEOUT = "timeout"
    INVALID_RESPONSE = "invalid_response"


class FailureCondition(StrEnum):
    """Why records were discarded: ``requestContext.condition`` of the on-failure message."""

    RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
    RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


@dataclass(frozen=True)
class MappingSettings:
    """The mapping's knobs, named after the template's properties and validated with Lambda's ranges."""

    batch_size: int = 100
    maximum_retry_attempts: int = 2
    bisect_batch_on_function_error: bool = True
    maximum_record_age_seconds: int = -1
    report_batch_item_failures: bool = True
    starting_position: str = "TRIM_HORIZON"
    function_timeout_seconds: int = 60
    memory_size_mb: int = 256
    function_arn: str = DEFAULT_FUNCTION_ARN
    on_failure_queue_url: str | None = None

    def __post_init__(self) -> None:
        _check_range("batch_size", self.batch_size, 1, 10_000)
        _check_range("maximum_retry_attempts", self.maximum_retry_attempts, -1, 10_000)
        if self.maximum_record_age_seconds != -1:
            _check_range("maximum_record_age_seconds", self.maximum_record_age_seconds, 60, 604_800, "-1 or ")
        _check_range("function_timeout_seconds", self.function_timeout_seconds, 1, 900)
        _check_range("memory_size_mb", self.memory_size_mb, 128, 10_240)
        if self.starting_position not in STARTING_POSITIONS:
            raise ValueError(f"starting_position must be one of {STARTING_POSITIONS}, got {self.starting_position!r}")
        try:
            function_name_from_arn(self.function_arn)
        except ValueError as exc:
            raise ValueError(f"function_arn: {exc}") from None


def _check_range(name: str, value: object, low: int, high: int, also: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be {also}an integer from {low} to {high}, got {value!r}")


@dataclass(frozen=True)
class Invocation:
    """One invocation of the handler: which records it carried and how it ended."""

    request_id: str
    shard_id: str
    first_sequence_number: str
    last_sequence_number: str
    size: int
    outcome: InvocationOutcome
    approximate_invoke_count: int
    error: str | None = None


@dataclass(frozen=True)
class DiscardedBatch:
    """Records skipped after exhausted retries or by age, and the on-failure message describing them."""

    condition: FailureCondition
    shard_id: str
    first_sequence_number: str
    last_sequence_number: str
    size: int
    message: dict[str, Any]
    sent: bool


@dataclass
class MappingReport:
    """What one run did; ``checkpoints`` is each shard's last processed sequence number after it."""

    invocation_log: list[Invocation] = field(default_factory=list)
    discarded: list[DiscardedBatch] = field(default_factory=list)
    batches_retried: int = 0
    bisections: int = 0
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    caught_up: bool = True

    @property
    def invocations(self) -> int:
        return len(self.invocation_log)

    @property
    def records_delivered(self) -> int:
        """Records handed to the handler, counting every re-delivery."""
        return sum(invocation.size for invocation in self.invocation_log)

    @property
    def records_discarded(self) -> int:
        """Records skipped after exhausted retries or by age, whether or not a destination is configured."""
        return sum(batch.size for batch in self.discarded)

    @property
    def records_sent_to_on_failure_destination(self) -> int:
        return sum(batch.size for batch in self.discarded if batch.sent)

    @property
    def failure_messages_sent(self) -> int:
        return sum(batch.sent for batch in self.discarded)


@dataclass
class _Batch:
    """Records in flight together, with the counts Lambda keeps for them."""

    records: list[dict[str, Any]]
    retries_used: int = 0
    invoke_count: int = 0
    last_request_id: str | None = None
    last_function_error: str | None = None

    def part(self, records: list[dict[str, Any]]) -> _Batch:
        return replace(self, records=records)


@dataclass
class _Shard:
    shard_id: str
    parent_shard_id: str | None
    start: str  # iterator type used when the shard has not been read yet
    iterator: str | None = None
    ended: bool = False  # closed and read to its end: GetRecords returned no NextShardIterator
    last_read: str | None = None
    checkpoint: str | None = None
    buffer: deque[dict[str, Any]] = field(default_factory=deque)
    pending: deque[_Batch] = field(default_factory=deque)

    @property
    def finished(self) -> bool:
        return self.ended and not self.buffer and not self.pending


@dataclass(frozen=True)
class _Result:
    request_id: str
    outcome: InvocationOutcome
    failed_index: int | None = None
    function_error: str | None = None
    error: str | None = None


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
    ) -> None:
        self.stream_arn = stream_arn
        self.settings = settings or MappingSettings()
        self._region = stream_arn.split(":")[3]
        self._handler = handler
        self._streams = streams_client or boto3.client("dynamodbstreams", region_name=self._region)
        self._sqs = sqs_client
        self._clock = clock
        self._shards: dict[str, _Shard] = {}
        self._discovered = False
        # One execution environment for the mapping's life, like a warm container.
        self._log_stream_name = new_log_stream_name(clock())
        if self.settings.starting_position == "LATEST":
            # LATEST means "after the mapping was created": pin the position now, not at the first poll.
            self._refresh_shards()

    @property
    def checkpoints(self) -> dict[str, str | None]:
        """Each known shard's last processed (delivered or discarded) sequence number."""
        return {shard_id: shard.checkpoint for shard_id, shard in self._shards.items()}

    def run_until_caught_up(self, max_invocations: int = 10_000) -> MappingReport:
        """Deliver every record currently in the stream, then return; stops early after ``max_invocations``."""
        report = MappingReport()
        while self._poll(report, max_invocations) and report.caught_up:
            pass
        report.checkpoints = self.checkpoints
        return report

    def poll_once(self, max_invocations: int = 10_000) -> MappingReport:
        """One round: at most one batch per shard that has records, as Lambda's concurrent shard pollers would."""
        report = MappingReport()
        self._poll(report, max_invocations)
        report.checkpoints = self.checkpoints
        return report

    # Shards

    def _refresh_shards(self) -> set[str]:
        listed: set[str] = set()
        request: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self._streams.describe_stream(**request)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                listed.add(shard_id)
                if shard_id not in self._shards:
                    # The starting position applies to the shards open at creation; later (child) shards are
                    # read from their start, as Lambda does after a split.
                    start = self.settings.starting_position if not self._discovered else "TRIM_HORIZON"
                    state = _Shard(shard_id, shard.get("ParentShardId"), start)
                    state.iterator = self._shard_iterator(state)
                    self._shards[shard_id] = state
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        self._discovered = True
        return listed

    def _shard_iterator(self, shard: _Shard) -> str:
        request: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_read is None:
            request["ShardIteratorType"] = shard.start
        else:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_read)
        return self._streams.get_shard_iterator(**request)["ShardIterator"]

    def _readable(self, shard: _Shard, listed: set[str]) -> bool:
        parent = shard.parent_shard_id
        if parent is None or parent not in listed or parent not in self._shards:
            return True  # no parent, or its records have left the stream
        return self._shards[parent].finished

    def _fill(self, shard: _Shard, wanted: int) -> None:
        while len(shard.buffer) < wanted and not shard.ended:
            if shard.iterator is None:
                shard.iterator = self._shard_iterator(shard)
            try:
                response = self._streams.get_records(
                    ShardIterator=shard.iterator, Limit=min(GET_RECORDS_LIMIT, wanted - len(shard.buffer))
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                    raise
                shard.iterator = None  # iterators live 15 minutes; resume after the last record read
                continue
            records = response.get("Records", [])
            shard.buffer.extend(records)
            if records:
                shard.last_read = records[-1]["dynamodb"]["SequenceNumber"]
            shard.iterator = response.get("NextShardIterator")
            shard.ended = shard.iterator is None
            if not records:
                break

    def _next_batch(self, shard: _Shard) -> _Batch | None:
        if shard.pending:
            return shard.pending.popleft()
        self._fill(shard, self.settings.batch_size)
        count = min(self.settings.batch_size, len(shard.buffer))
        if count == 0:
            return None
        return _Batch([shard.buffer.popleft() for _ in range(count)])

    # Delivery

    def _poll(self, report: MappingReport, max_invocations: int) -> bool:
        listed = self._refresh_shards()
        progressed = False
        for shard in list(self._shards.values()):
            if shard.finished or not self._readable(shard, listed):
                continue
            batch = self._next_batch(shard)
            if batch is not None and self._deliver(shard, batch, report, max_invocations):
                progressed = True
            if not report.caught_up:
                break
        return progressed

    def _deliver(self, shard: _Shard, batch: _Batch, report: MappingReport, max_invocations: int) -> bool:
        expired = self._expired_prefix(batch.records)
        if expired:
            self._discard(shard, batch.part(batch.records[:expired]), FailureCondition.RECORD_AGE_EXCEEDED, report)
            batch = batch.part(batch.records[expired:])
            if not batch.records:
                return True
        if report.invocations >= max_invocations:
            shard.pending.appendleft(batch)
            report.caught_up = False
            return bool(expired)
        result = self._invoke(shard, batch, report)
        self._settle(shard, batch, result, report)
        return True

    def _expired_prefix(self, records: list[dict[str, Any]]) -> int:
        max_age = self.settings.maximum_record_age_seconds
        if max_age == -1:
            return 0
        now = self._clock()
        count = 0
        # Creation times rise along a shard, so the records too old form a prefix of the batch.
        for record in records:
            if now - epoch_seconds(record["dynamodb"]["ApproximateCreationDateTime"]) <= max_age:
                break
            count += 1
        return count

    def _invoke(self, shard: _Shard, batch: _Batch, report: MappingReport) -> _Result:
        settings = self.settings
        event = {"Records": [lambda_record(record, self.stream_arn) for record in batch.records]}
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
            response = self._handler(json.loads(json.dumps(event)), context)
            try:
                response = json.loads(json.dumps(response))
            except (TypeError, ValueError) as exc:
                failure = f"Runtime.MarshalError: {exc}"
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            LOG.debug("handler raised", exc_info=True)
        if self._clock() - started > settings.function_timeout_seconds:
            error = f"Task timed out after {settings.function_timeout_seconds} seconds"
            result = _Result(request_id, InvocationOutcome.TIMEOUT, function_error="Unhandled", error=error)
        elif failure is not None:
            result = _Result(request_id, InvocationOutcome.FUNCTION_ERROR, function_error="Unhandled", error=failure)
        else:
            result = self._judge(response, batch.records, request_id)
        report.invocation_log.append(
            Invocation(
                request_id=request_id,
                shard_id=shard.shard_id,
                first_sequence_number=_sequence_number(batch.records[0]),
                last_sequence_number=_sequence_number(batch.records[-1]),
                size=len(batch.records),
                outcome=result.outcome,
                approximate_invoke_count=batch.invoke_count,
                error=result.error,
            )
        )
        if result.outcome is not InvocationOutcome.SUCCESS:
            LOG.warning(
                "batch %s..%s (%d records) on %s: %s%s",
                _sequence_number(batch.records[0]),
                _sequence_number(batch.records[-1]),
                len(batch.records),
                shard.shard_id,
                result.outcome,
                f" ({result.error})" if result.error else "",
            )
        return result

    def _judge(self, response: Any, records: list[dict[str, Any]], request_id: str) -> _Result:
        """Read a partial batch response the way Lambda does."""
        if not self.settings.report_batch_item_failures or response is None:
            return _Result(request_id, InvocationOutcome.SUCCESS)

        def invalid(reason: str) -> _Result:
            return _Result(request_id, InvocationOutcome.INVALID_RESPONSE, error=reason)

        if not isinstance(response, dict):
            return invalid(f"the response is not a JSON object: {response!r}")
        failures = response.get("batchItemFailures")
        if not failures:  # null or empty list: complete success
            return _Result(request_id, InvocationOutcome.SUCCESS)
        if not isinstance(failures, list):
            return invalid(f"batchItemFailures is not a list: {failures!r}")
        positions = {_sequence_number(record): index for index, record in enumerate(records)}
        identifiers: list[str] = []
        for item in failures:
            if not isinstance(item, dict) or "itemIdentifier" not in item:
                return invalid(f"batch item failure without itemIdentifier: {item!r}")
            identifier = item["itemIdentifier"]
            if not isinstance(identifier, str) or not identifier:
                return invalid(f"empty or null itemIdentifier: {identifier!r}")
            if identifier not in positions:
                return invalid(f"itemIdentifier {identifier!r} is not in the batch")
            identifiers.append(identifier)
        lowest = min(identifiers, key=int)
        return _Result(request_id, InvocationOutcome.PARTIAL_FAILURE, failed_index=positions[lowest])

    def _settle(self, shard: _Shard, batch: _Batch, result: _Result, report: MappingReport) -> None:
        batch.last_request_id = result.request_id
        batch.last_function_error = result.function_error
        records = batch.records
        bisect = self.settings.bisect_batch_on_function_error
        if result.outcome is InvocationOutcome.SUCCESS:
            shard.checkpoint = _sequence_number(records[-1])
            return
        if result.outcome is InvocationOutcome.PARTIAL_FAILURE:
            index = result.failed_index or 0
            if index > 0:
                shard.checkpoint = _sequence_number(records[index - 1])
            remainder = batch.part(records[index:])
            if bisect and index > 0:
                shard.pending.appendleft(remainder)  # split at the reported record: no retry consumed
            else:
                self._retry_or_discard(shard, remainder, report)
            return
        if bisect and len(records) > 1:
            middle = len(records) // 2
            shard.pending.appendleft(batch.part(records[middle:]))
            shard.pending.appendleft(batch.part(records[:middle]))
            report.bisections += 1
            return
        self._retry_or_discard(shard, batch, report)

    def _retry_or_discard(self, shard: _Shard, batch: _Batch, report: MappingReport) -> None:
        limit = self.settings.maximum_retry_attempts
        if limit == -1 or batch.retries_used < limit:
            batch.retries_used += 1
            shard.pending.appendleft(batch)
            report.batches_retried += 1
        else:
            self._discard(shard, batch, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, report)

    def _discard(self, shard: _Shard, batch: _Batch, condition: FailureCondition, report: MappingReport) -> None:
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
        first, last = _sequence_number(batch.records[0]), _sequence_number(batch.records[-1])
        LOG.warning(
            "discarded %d records %s..%s of %s (%s)%s",
            len(batch.records),
            first,
            last,
            shard.shard_id,
            condition,
            "" if queue_url else "; no on-failure destination",
        )
        shard.checkpoint = last
        report.discarded.append(
            DiscardedBatch(condition, shard.shard_id, first, last, len(batch.records), message, queue_url is not None)
        )


def on_failure_message(
    *,
    condition: FailureCondition,
    records: list[Mapping[str, Any]],
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    request_id: str,
    approximate_invoke_count: int,
    function_error: str | None,
    now: float,
    executed_version: str = "$LATEST",
) -> dict[str, Any]:
    """The metadata-only record Lambda sends to an SQS on-failure destination for discarded stream records."""
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": str(condition),
            "approximateInvokeCount": approximate_invoke_count,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": executed_version,
            "functionError": function_error,
        },
        "version": "1.0",
        "timestamp": _iso(now, milliseconds=True),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(epoch_seconds(first["ApproximateCreationDateTime"])),
            "approximateArrivalOfLastRecord": _iso(epoch_seconds(last["ApproximateCreationDateTime"])),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def _sequence_number(record: Mapping[str, Any]) -> str:
    return record["dynamodb"]["SequenceNumber"]


def _iso(epoch_seconds: float, *, milliseconds: bool = False) -> str:
    """UTC ISO-8601 with a Z, as Lambda writes it: arrival times to the second, the timestamp to the millisecond."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds" if milliseconds else "seconds").replace("+00:00", "Z")
