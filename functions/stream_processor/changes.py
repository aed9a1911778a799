"""Stream records to changes: validate one DynamoDB Streams record of a Lambda event and read what the plan needs.

A record that can never be processed (not a DynamoDB stream record, unknown eventName, malformed keys or images) raises
``PoisonRecordError`` with the reason that goes to the dead-letter queue. Any JSON may arrive here (hand-made and
replayed events), so every field the function uses is type-checked before use, and keys and images are checked
attribute by attribute exactly as DynamoDB sends them. Reasons name the field or attribute path and the JSON type
found, never an attribute value: they reach log lines. The raw record is validated here rather than through
Powertools' parser model or event data class because the poison contract needs a reason per record (the parser model
rejects a whole batch) and exact attribute values (the data class turns N into Decimal).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stream_processor.dynamodb_json import InvalidAttributeValue, attribute_map_json, is_json_object, json_type

__all__ = [
    "Change",
    "PoisonRecordError",
    "describe",
    "parse_change",
    "sequence_number_of",
    "stream_order",
    "table_name_of",
]

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
_EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
#: Stream view types whose INSERT/MODIFY records carry no new image: the item is read from the table instead.
IMAGELESS_VIEW_TYPES = frozenset({"KEYS_ONLY", "OLD_IMAGE"})
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}\Z")  # DynamoDB's table name rule
_LARGEST_EPOCH_SECONDS = 2**53  # beyond it a number is not a time (and may not even be writable as JSON)


class PoisonRecordError(ValueError):
    """The record can never succeed; ``reason`` says why and goes to the dead-letter queue with the record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Not frozen, like the other per-record classes of the plan: a frozen dataclass sets each field through
# object.__setattr__, which makes building one about six times slower (1.4 us more per record here). Treat as read-only.
@dataclass(slots=True)
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
    #: The JSON of the keys and images, written once while the record was validated (None: not known). The new
    #: image's is kept as UTF-8 bytes: that same object becomes the cache value (no second copy per item in memory).
    keys_json: str | None = None
    new_image_json: bytes | None = None
    old_image_json: str | None = None

    @property
    def needs_table_read(self) -> bool:
        """An INSERT/MODIFY whose stream sends no new image: the current item must come from the table."""
        return self.event_name != "REMOVE" and self.new_image is None


def sequence_number_of(record: Any) -> str | None:
    """The record's stream sequence number when it has a well-formed one (a string of ASCII digits)."""
    if is_json_object(record):
        dynamodb = record.get("dynamodb")
        if is_json_object(dynamodb):
            value = dynamodb.get("SequenceNumber")
            if isinstance(value, str) and value.isascii() and value.isdigit():
                return value
    return None


def stream_order(sequence_number: str) -> tuple[int, str]:
    """Sort key of a sequence number: its numeric order, without int() (which refuses over 4,300 digits)."""
    significant = sequence_number.lstrip("0")
    return len(significant), significant


def table_name_of(event_source_arn: Any) -> str | None:
    """The table name in a stream ARN ``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL``."""
    return _table_name_in(event_source_arn) if isinstance(event_source_arn, str) else None


@functools.lru_cache(maxsize=64)  # a batch's records share their stream's ARN
def _table_name_in(event_source_arn: str) -> str | None:
    parts = event_source_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "dynamodb":
        return None
    resource = parts[5].split("/")
    if len(resource) < 2 or resource[0] != "table" or not _TABLE_NAME.match(resource[1]):
        return None
    return resource[1]


def describe(value: Any) -> str:
    """A record field's value for a reason: a short quoted string, or only its JSON type (never a whole structure)."""
    if isinstance(value, str):
        text = ascii(value) if not value.isprintable() else repr(value)
        return text if len(text) <= 42 else text[:40] + "…" + text[0]
    return json_type(value)


def parse_change(record: Any, sequence_number: str | None = None) -> Change:
    """Validate one record of a DynamoDB Streams Lambda event; raise ``PoisonRecordError`` when it never can succeed.

    ``sequence_number``: the record's, when the caller has already read it with ``sequence_number_of``.
    """
    if not is_json_object(record):
        raise PoisonRecordError(f"not a DynamoDB stream record: a record is a JSON object, got {json_type(record)}")
    if record.get("eventSource") != "aws:dynamodb":
        raise PoisonRecordError(f"not a DynamoDB stream record: eventSource is {describe(record.get('eventSource'))}")
    dynamodb = record.get("dynamodb")
    if not is_json_object(dynamodb):
        raise PoisonRecordError(f"malformed record: 'dynamodb' must be an object, got {describe(dynamodb)}")
    if sequence_number is None:
        sequence_number = sequence_number_of(record)
    if sequence_number is None:
        found = dynamodb.get("SequenceNumber")
        got = "it is missing" if found is None else f"got {describe(found)}"
        raise PoisonRecordError(f"malformed record: dynamodb.SequenceNumber must be a string of digits, {got}")
    event_name = record.get("eventName")
    if not isinstance(event_name, str) or event_name not in _EVENT_NAMES:
        raise PoisonRecordError(f"unknown eventName {describe(event_name)}: expected INSERT, MODIFY or REMOVE")
    table = table_name_of(record.get("eventSourceARN"))
    if table is None:
        raise PoisonRecordError(
            f"malformed record: eventSourceARN {describe(record.get('eventSourceARN'))} is not a DynamoDB stream ARN"
        )
    event_id = record.get("eventID", "")
    if not isinstance(event_id, str) or not _is_unicode(event_id):
        raise PoisonRecordError(f"malformed record: eventID must be a string of Unicode text, got {describe(event_id)}")
    keys = dynamodb.get("Keys")
    if not is_json_object(keys) or not keys:
        raise PoisonRecordError(
            f"malformed record: dynamodb.Keys must be a non-empty map of key attributes, got {json_type(keys)}"
        )
    keys_json = _check_attributes(keys, "dynamodb.Keys")
    new_image, new_image_text = _image(dynamodb, "NewImage")
    new_image_json = None if new_image_text is None else new_image_text.encode("utf-8")
    old_image, old_image_json = _image(dynamodb, "OldImage")
    view_type = dynamodb.get("StreamViewType")
    if view_type is not None and not isinstance(view_type, str):
        raise PoisonRecordError(f"malformed record: dynamodb.StreamViewType must be text, got {json_type(view_type)}")
    if event_name != "REMOVE" and new_image is None and view_type not in IMAGELESS_VIEW_TYPES:
        raise PoisonRecordError(
            f"malformed record: {event_name} without dynamodb.NewImage on a {describe(view_type)} stream"
        )
    identity = record.get("userIdentity")
    removed_by_ttl = (
        event_name == "REMOVE"
        and is_json_object(identity)
        and identity.get("type") == "Service"
        and identity.get("principalId") == "dynamodb.amazonaws.com"
    )
    return Change(
        record=record,
        sequence_number=sequence_number,
        event_id=event_id,
        event_name=event_name,  # type: ignore[arg-type]  # checked against _EVENT_NAMES
        table=table,
        keys=keys,
        new_image=new_image,
        old_image=old_image,
        approximate_creation_time=_epoch_seconds(dynamodb.get("ApproximateCreationDateTime")),
        stream_view_type=view_type,
        removed_by_ttl=removed_by_ttl,
        keys_json=keys_json,
        new_image_json=new_image_json,
        old_image_json=old_image_json,
    )


def _image(dynamodb: Mapping[str, Any], name: str) -> tuple[Mapping[str, Any] | None, str | None]:
    """The image and its JSON text (None, None when the record has none)."""
    image = dynamodb.get(name)
    if image is None:
        return None, None
    if not is_json_object(image):
        raise PoisonRecordError(f"malformed record: dynamodb.{name} must be an object, got {json_type(image)}")
    return image, _check_attributes(image, f"dynamodb.{name}")


def _check_attributes(attributes: Mapping[str, Any], where: str) -> str:
    """Every attribute value well-formed as DynamoDB sends it, projected or not (the TTL attribute included); the
    JSON text it was checked by writing, kept so that the cache value and the message need not write it again."""
    try:
        return attribute_map_json(attributes, where)
    except InvalidAttributeValue as error:
        raise PoisonRecordError(f"malformed record: {error}") from None


def _epoch_seconds(created: Any) -> float | int | None:
    """ApproximateCreationDateTime when it is a usable number of epoch seconds; otherwise it is left out."""
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        return None
    if isinstance(created, float) and not math.isfinite(created):
        return None
    return created if -_LARGEST_EPOCH_SECONDS <= created <= _LARGEST_EPOCH_SECONDS else None


def _is_unicode(text: str) -> bool:
    """Whether text has a UTF-8 form (a lone surrogate, possible only in a hand-made event, has none)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
