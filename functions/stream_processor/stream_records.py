"""Stream records as Lambda delivers them: GetRecords records in the event's shape, and shard ranges read back.

Shared by the redrive (which re-reads the ranges named in Lambda's on-failure records) and the local
event-source-mapping emulator (which delivers records to the handler as Lambda would), so both see exactly the event
shape Lambda sends: ``eventSourceARN`` added, ``eventVersion`` 1.1, ``ApproximateCreationDateTime`` in epoch seconds,
binary values as base64 text, ``userIdentity`` spelt ``type`` / ``principalId``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["RangeUnavailable", "StreamReadError", "epoch_seconds", "lambda_record", "read_stream_range"]

_GET_RECORDS_LIMIT = 1000


class RangeUnavailable(Exception):
    """The stream no longer holds a discarded batch's records; only a backfill can restore what they changed."""


class StreamReadError(RuntimeError):
    """The stream could not be read just now (throttling, a network error, a range not yet complete): try later."""


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 returns it) in the shape Lambda puts in the event, and nothing more."""
    stream = record["dynamodb"]
    change: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in stream:
        change["ApproximateCreationDateTime"] = epoch_seconds(stream["ApproximateCreationDateTime"])
    for key in ("Keys", "NewImage", "OldImage"):
        if key in stream:
            change[key] = {name: _json_attribute(value) for name, value in stream[key].items()}
    for key in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if key in stream:
            change[key] = stream[key]
    event: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or stream_arn.split(":")[3],
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }
    identity = record.get("userIdentity")
    if identity:
        # The Streams API spells these Type / PrincipalId; Lambda's event spells them type / principalId.
        event["userIdentity"] = {
            "type": identity.get("Type", identity.get("type")),
            "principalId": identity.get("PrincipalId", identity.get("principalId")),
        }
    return event


def epoch_seconds(value: datetime | float) -> float:
    """boto3 parses ApproximateCreationDateTime to a datetime; Lambda sends epoch seconds."""
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _json_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute value with boto3's bytes turned back into the base64 text Lambda's JSON event carries."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": _base64(inner)}
    if kind == "BS":
        return {"BS": [_base64(item) for item in inner]}
    if kind == "M":
        return {"M": {name: _json_attribute(item) for name, item in inner.items()}}
    if kind == "L":
        return {"L": [_json_attribute(item) for item in inner]}
    return {kind: inner}


def _base64(data: bytes | str) -> str:
    return base64.b64encode(data).decode("ascii") if isinstance(data, bytes | bytearray) else data


def read_stream_range(
    client: Any,
    *,
    stream_arn: str,
    shard_id: str,
    start_sequence_number: str,
    end_sequence_number: str,
    max_empty_pages: int = 10,
) -> list[dict[str, Any]]:
    """The records from start to end (inclusive) of a shard, in Lambda's event shape; ``RangeUnavailable`` if gone."""
    start, end = int(start_sequence_number), int(end_sequence_number)
    where = f"{shard_id} {start_sequence_number}..{end_sequence_number}"
    try:
        iterator = client.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=start_sequence_number,
        )["ShardIterator"]
    except ClientError as error:
        raise _range_error(error, where) from None
    except BotoCoreError as error:
        raise StreamReadError(f"cannot read stream range {where}: {error}") from None
    records: list[dict[str, Any]] = []
    empty_pages = 0
    last = None
    while iterator:
        try:
            page = client.get_records(ShardIterator=iterator, Limit=_GET_RECORDS_LIMIT)
        except ClientError as error:
            raise _range_error(error, where) from None
        except BotoCoreError as error:
            raise StreamReadError(f"cannot read stream range {where}: {error}") from None
        for record in page.get("Records", []):
            number = int(record["dynamodb"]["SequenceNumber"])
            if last is None and number > start:
                raise RangeUnavailable(
                    f"stream range {where} is no longer in the stream: its first record now is {number} "
                    "(past the range's start: trimmed after the 24-hour retention)"
                )
            if number > end:
                return records
            records.append(lambda_record(record, stream_arn))
            last = number
            if number == end:
                return records
        empty_pages = 0 if page.get("Records") else empty_pages + 1
        if empty_pages >= max_empty_pages:
            break
        iterator = page.get("NextShardIterator")
    if last is None:
        raise RangeUnavailable(f"stream range {where} is no longer in the stream: no record at or after its start")
    raise StreamReadError(f"stream range {where} ends at {last} in the stream, before the range's end: try again later")


def _range_error(error: ClientError, where: str) -> Exception:
    code = error.response.get("Error", {}).get("Code", "")
    if code == "TrimmedDataAccessException":
        return RangeUnavailable(f"stream range {where} was trimmed from the stream (older than the 24-hour retention)")
    if code == "ResourceNotFoundException":
        return RangeUnavailable(f"stream range {where}: the stream or shard no longer exists")
    return StreamReadError(f"cannot read stream range {where}: {code}: {error}")
