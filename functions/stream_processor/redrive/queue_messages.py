"""The two kinds of dead-letter message, read into the stream records they are about.

- Lambda's on-failure records for discarded stream batches: metadata only (``DDBStreamBatchInfo``: shard, first and
  last sequence numbers, stream ARN), validated with Powertools' ``DynamoDBStreamLambdaOnFailureDestinationModel``.
  The records are re-read from the stream (GetShardIterator AT_SEQUENCE_NUMBER, then GetRecords until past the last
  sequence number).
- Poison records ``{"kind": "poison-record", "reason": ..., "record": ...}`` (from the stream processor, and from the
  backfill for items the cache refuses), with the record inside.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamLambdaOnFailureDestinationModel
from pydantic import ValidationError

from stream_processor.dead_letters import POISON_KIND
from stream_processor.stream_records import read_stream_range

__all__ = ["AffectedRecords", "UnusableMessage", "affected_records"]

ON_FAILURE_KIND = "on-failure"


class UnusableMessage(Exception):
    """A message the redrive cannot act on (unknown shape, invalid on-failure record): left for an operator."""


@dataclass(frozen=True)
class AffectedRecords:
    """The kind of a queue message and the stream records it is about."""

    kind: str
    records: list[Any]


def affected_records(message_body: str | None, streams: Any) -> AffectedRecords:
    """The records a queue message is about: in the message (poison) or re-read from the stream (on-failure).

    Raises ``UnusableMessage``, or the stream's ``RangeUnavailable`` / ``StreamReadError``.
    """
    try:
        body = json.loads(message_body or "")
    except ValueError:
        body = None
    if isinstance(body, Mapping) and body.get("kind") == POISON_KIND and "record" in body:
        return AffectedRecords(POISON_KIND, [body["record"]])
    if isinstance(body, Mapping) and "DDBStreamBatchInfo" in body:
        try:
            info = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(body).ddb_stream_batch_info
        except ValidationError as error:
            raise UnusableMessage(f"not a valid Lambda on-failure record: {_first_error(error)}") from None
        records = read_stream_range(
            streams,
            stream_arn=info.stream_arn,
            shard_id=info.shard_id,
            start_sequence_number=info.start_sequence_number,
            end_sequence_number=info.end_sequence_number,
        )
        return AffectedRecords(ON_FAILURE_KIND, records)
    raise UnusableMessage("neither a Lambda on-failure record nor a poison record: left for an operator")


def _first_error(error: ValidationError) -> str:
    detail = error.errors()[0]
    return f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}"
