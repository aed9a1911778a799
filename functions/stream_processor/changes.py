"""Stream records to changes: validate one DynamoDB Streams record of a Lambda event and read what the plan needs.

A record that can never be processed (not a DynamoDB stream record, unknown eventName, malformed keys or images) raises
``PoisonRecordError`` with the reason that goes to the dead-letter queue. The raw record is validated here rather than
through Powertools' parser model or event data class because the poison contract needs a reason per record (the
parser model rejects a whole batch) and exact attribute values (the data class turns N into Decimal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Change", "PoisonRecordError", "parse_change", "sequence_number_of", "table_name_of"]

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
_EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
#: Stream view types whose INSERT/MODIFY records carry no new image: the item is read from the table instead.
IMAGELESS_VIEW_TYPES = frozenset({"KEYS_ONLY", "OLD_IMAGE"})


class PoisonRecordError(ValueError):
    """The record can never succeed; ``reason`` says why and goes to the dead-letter queue with the record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Change:
    """One valid stream record: what changed, where, and in which position of the stream."""

    record: Mapping[str, Any]
    sequence_number: str
    event_id: str
    event_name: EventName
    table: str
    keys: Mapping[str, Any]
    new_image: Mapping[str, Any] | None
    old_image: Mapping[str, Any] | None
    approximate_creation_time: float | int | None
    stream_view_type: str | None
    removed_by_ttl: bool

    @property
    def needs_table_read(self) -> bool:
        """An INSERT/MODIFY whose stream sends no new image: the current item must come from the table."""
        return self.event_name != "REMOVE" and self.new_image is None


def sequence_number_of(record: Any) -> str | None:
    """The record's stream sequence number when it has a well-formed one (numeric string)."""
    if isinstance(record, Mapping):
        dynamodb = record.get("dynamodb")
        if isinstance(dynamodb, Mapping):
            value = dynamodb.get("SequenceNumber")
            if isinstance(value, str) and value.isascii() and value.isdigit():  # int() must read it
                return value
    return None


def table_name_of(event_source_arn: Any) -> str | None:
    """The table name in a stream ARN ``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL``."""
    if not isinstance(event_source_arn, str):
        return None
    parts = event_source_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "dynamodb":
        return None
    resource = parts[5].split("/")
    if len(resource) < 2 or resource[0] != "table" or not resource[1]:
        return None
    return resource[1]


def parse_change(record: Any) -> Change:
    """Validate one record of a DynamoDB Streams Lambda event; raise ``PoisonRecordError`` when it never can succeed."""
    if not isinstance(record, Mapping):
        raise PoisonRecordError("not a DynamoDB stream record: a record must be a JSON object")
    if record.get("eventSource") != "aws:dynamodb":
        raise PoisonRecordError(f"not a DynamoDB stream record: eventSource is {record.get('eventSource')!r}")
    dynamodb = record.get("dynamodb")
    if not isinstance(dynamodb, Mapping):
        raise PoisonRecordError("malformed record: 'dynamodb' is missing or not an object")
    sequence_number = sequence_number_of(record)
    if sequence_number is None:
        raise PoisonRecordError("malformed record: dynamodb.SequenceNumber is missing or not numeric")
    event_name = record.get("eventName")
    if event_name not in _EVENT_NAMES:
        raise PoisonRecordError(f"unknown eventName {event_name!r}: expected INSERT, MODIFY or REMOVE")
    table = table_name_of(record.get("eventSourceARN"))
    if table is None:
        raise PoisonRecordError(
            f"malformed record: eventSourceARN {record.get('eventSourceARN')!r} is not a DynamoDB stream ARN"
        )
    keys = dynamodb.get("Keys")
    if not isinstance(keys, Mapping) or not keys:
        raise PoisonRecordError("malformed record: dynamodb.Keys is missing or empty")
    new_image = _image(dynamodb, "NewImage")
    old_image = _image(dynamodb, "OldImage")
    view_type = dynamodb.get("StreamViewType")
    if event_name != "REMOVE" and new_image is None and view_type not in IMAGELESS_VIEW_TYPES:
        raise PoisonRecordError(f"malformed record: {event_name} without dynamodb.NewImage on a {view_type} stream")
    created = dynamodb.get("ApproximateCreationDateTime")
    identity = record.get("userIdentity")
    removed_by_ttl = (
        event_name == "REMOVE"
        and isinstance(identity, Mapping)
        and identity.get("type") == "Service"
        and identity.get("principalId") == "dynamodb.amazonaws.com"
    )
    return Change(
        record=record,
        sequence_number=sequence_number,
        event_id=str(record.get("eventID", "")),
        event_name=event_name,
        table=table,
        keys=keys,
        new_image=new_image,
        old_image=old_image,
        approximate_creation_time=created
        if isinstance(created, (int, float)) and not isinstance(created, bool)
        else None,
        stream_view_type=view_type if isinstance(view_type, str) else None,
        removed_by_ttl=removed_by_ttl,
    )


def _image(dynamodb: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    image = dynamodb.get(name)
    if image is None:
        return None
    if not isinstance(image, Mapping):
        raise PoisonRecordError(f"malformed record: dynamodb.{name} is not an object")
    return image
