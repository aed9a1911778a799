"""Builders of realistic Lambda DynamoDB Streams records for tests (the Momento demo's weather table, key ``Location``).

Attributes passed as keyword arguments become N when they look numeric and S otherwise; pass a ready attribute
value (a dict such as ``{"BOOL": True}``) for any other type.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CREATED",
    "WEATHER_STREAM_ARN",
    "attribute",
    "batch",
    "image",
    "insert",
    "keys_only",
    "modify",
    "record",
    "remove",
    "ttl_remove",
]

WEATHER_STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/weather/stream/2026-11-01T00:00:00.000"
CREATED = 1795000000
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?\Z")


def attribute(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value from a plain value (numeric-looking strings and numbers become N)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    if isinstance(value, str) and _NUMBER.match(value):
        return {"N": value}
    return {"S": str(value)}


def image(location: str, **attributes: Any) -> dict[str, Any]:
    """A weather item image."""
    return {"Location": {"S": location}, **{name: attribute(value) for name, value in attributes.items()}}


def record(
    event_name: str,
    location: str,
    *,
    seq: int,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    view_type: str = "NEW_AND_OLD_IMAGES",
    arn: str = WEATHER_STREAM_ARN,
) -> dict[str, Any]:
    """One record exactly as Lambda delivers it (eventVersion 1.1, eventSourceARN, epoch creation time)."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": CREATED + seq % 1000,
        "Keys": {"Location": {"S": location}},
        "SequenceNumber": str(seq),
        "SizeBytes": 64,
        "StreamViewType": view_type,
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    return {
        "eventID": f"{seq:032x}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": arn,
    }


def insert(location: str, *, seq: int, **attributes: Any) -> dict[str, Any]:
    return record("INSERT", location, seq=seq, new=image(location, **attributes))


def modify(location: str, *, seq: int, old: dict[str, Any] | None = None, **attributes: Any) -> dict[str, Any]:
    return record("MODIFY", location, seq=seq, new=image(location, **attributes), old=image(location, **(old or {})))


def remove(location: str, *, seq: int, **old_attributes: Any) -> dict[str, Any]:
    return record("REMOVE", location, seq=seq, old=image(location, **old_attributes))


def keys_only(event_name: str, location: str, *, seq: int) -> dict[str, Any]:
    """A record of a KEYS_ONLY stream: no images, the item must be read from the table."""
    return record(event_name, location, seq=seq, view_type="KEYS_ONLY")


def ttl_remove(location: str, *, seq: int, **old_attributes: Any) -> dict[str, Any]:
    """A REMOVE made by DynamoDB's TTL process (the service principal)."""
    removed = remove(location, seq=seq, **old_attributes)
    removed["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return removed


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    """A Lambda event holding these records."""
    return {"Records": list(records)}
