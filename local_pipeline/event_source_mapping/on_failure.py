"""The record Lambda sends to a stream mapping's on-failure destination: metadata only, pointing at the records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from stream_processor.stream_records import epoch_seconds

__all__ = ["FailureCondition", "on_failure_message"]


class FailureCondition(StrEnum):
    """Why records were discarded: ``requestContext.condition`` of the on-failure message."""

    RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
    RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


def on_failure_message(
    *,
    condition: FailureCondition,
    records: Sequence[Mapping[str, Any]],
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    request_id: str,
    approximate_invoke_count: int,
    function_error: str | None,
    now: float,
    executed_version: str = "$LATEST",
) -> dict[str, Any]:
    """The metadata-only record Lambda sends to an SQS on-failure destination for discarded stream records.

    ``DDBStreamBatchInfo`` names the first and last sequence numbers of the discarded batch; with a
    ParallelizationFactor above 1 that range of the shard can also hold records of other lanes.
    """
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


def _iso(epoch_seconds: float, *, milliseconds: bool = False) -> str:
    """UTC ISO-8601 with a Z, as Lambda writes it: arrival times to the second, the timestamp to the millisecond."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds" if milliseconds else "seconds").replace("+00:00", "Z")
