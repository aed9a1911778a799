"""The batch planner: a batch of stream records to a plan of cache writes and change messages, per cache key.

Pure code, no I/O. Changes are grouped by cache key in stream order. Per key only the last cache write is kept (the
earlier ones are superseded: the cache would hold them for microseconds), and every change of the key is published
after that write, in stream order, so a subscriber that reads the cache on a message never sees an older state.
Different keys are independent and may run concurrently.

Powertools' batch processors run records either in order or all at once; neither keeps per-key order with concurrency
across keys, and neither can supersede writes, so this planner is the project's own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_processor.cache_keys import CacheKeyBuilder, KeyTemplateMismatch
from stream_processor.changes import (
    Change,
    PoisonRecordError,
    parse_change,
    sequence_number_of,
    stream_order,
    table_name_of,
)
from stream_processor.config import Settings
from stream_processor.dynamodb_json import InvalidAttributeValue, attribute_map_json, project
from stream_processor.messages import MessageFormat
from stream_processor.topic_packing import change_message_limit
from stream_processor.ttl import TtlPolicy

__all__ = [
    "UNREADABLE_RECORD",
    "ChangeRules",
    "ItemRead",
    "KeyChange",
    "KeyPlan",
    "ParsedBatch",
    "Plan",
    "PoisonRecord",
    "RejectedRecord",
    "SetItem",
    "items_to_read",
    "plan_batch",
    "read_batch",
]


#: Start of the reason of a record whose reading failed unexpectedly (a defect: the tests assert it never happens).
UNREADABLE_RECORD = "unreadable record: unexpected error while reading it"


@dataclass(frozen=True, slots=True)
class ChangeRules:
    """Everything that turns a change into cache writes and messages: keys, values, TTLs, message format."""

    keys: CacheKeyBuilder
    ttl: TtlPolicy
    messages: MessageFormat

    @classmethod
    def from_settings(cls, settings: Settings) -> ChangeRules:
        return cls(
            keys=CacheKeyBuilder(settings.key_template),
            ttl=TtlPolicy(settings.default_ttl_seconds, settings.max_ttl_seconds, settings.ttl_attribute),
            messages=MessageFormat(
                # Packed, a lone change message must still fit a topic message with the array's brackets.
                max_bytes=change_message_limit(settings.topic_max_bytes, settings.topic_packing),
                include=settings.include_attributes,
                exclude=settings.exclude_attributes,
            ),
        )

    def cache_value(self, image: Mapping[str, Any], written: bytes | None = None) -> bytes:
        """The cache value of an item: its projected image as compact UTF-8 JSON (``written``: the image's JSON
        when already known, used as is when nothing is left out)."""
        include, exclude = self.messages.include, self.messages.exclude
        if written is not None and include is None and not exclude:
            return written
        return attribute_map_json(project(image, include, exclude)).encode("utf-8")

    def cache_write(self, image: Mapping[str, Any] | None, now: float, written: bytes | None = None) -> SetItem | None:
        """The write that makes the cache hold ``image``: a set, or None (delete) when it is gone or expired."""
        if image is None:
            return None
        ttl_ms = self.ttl.ttl_milliseconds(image, now)
        if ttl_ms is None:
            return None
        return SetItem(self.cache_value(image, written), ttl_ms)


@dataclass(slots=True)  # not frozen: built per record or key (see changes.Change)
class SetItem:
    """A cache set: the encoded value and its TTL in whole milliseconds (a delete is represented by None)."""

    value: bytes
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class PoisonRecord:
    """A record that can never succeed: it goes to the dead-letter queue with its reason and then counts as handled."""

    sequence_number: str | None
    reason: str
    record: Any


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record that fails for a systemic cause (configuration): reported for Lambda to retry, never dead-lettered."""

    sequence_number: str | None
    cause: str


@dataclass(slots=True)  # not frozen: built per record or key (see changes.Change)
class KeyChange:
    """One change of a key: its change message, or the poison reason when the change cannot be applied."""

    sequence_number: str
    record: Any
    message: bytes | None
    poison_reason: str | None = None


@dataclass(slots=True)  # not frozen: built per record or key (see changes.Change)
class KeyPlan:
    """All changes of one cache key in a batch: one cache write (``write`` None = delete), then the messages."""

    cache_key: str
    write: SetItem | None
    writer: KeyChange
    changes: tuple[KeyChange, ...]

    @property
    def superseded_writes(self) -> int:
        return len(self.changes) - 1

    @property
    def earliest_sequence_number(self) -> str:
        return self.changes[0].sequence_number


@dataclass(frozen=True)
class ItemRead:
    """An item whose current state must be read from the table (its stream sends no new image)."""

    cache_key: str
    table: str
    keys: Mapping[str, Any]


@dataclass
class ParsedBatch:
    """A batch read into changes grouped by cache key (first appearance order), plus what could not be keyed."""

    by_key: dict[str, list[Change | PoisonRecord]] = field(default_factory=dict)
    unkeyed_poison: list[PoisonRecord] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    records: int = 0


@dataclass(frozen=True)
class Plan:
    """What to do for a batch: per-key plans, poison records for the dead-letter queue, rejected records to report."""

    key_plans: tuple[KeyPlan, ...]
    poison: tuple[PoisonRecord, ...]
    rejected: tuple[RejectedRecord, ...]
    records: int

    @property
    def superseded_writes(self) -> int:
        return sum(plan.superseded_writes for plan in self.key_plans)


def read_batch(records: Sequence[Any], rules: ChangeRules) -> ParsedBatch:
    """Parse every record and group it under its cache key, keeping stream order within each key.

    Never raises for a record, whatever JSON it holds: a record that cannot be read is poison with its reason.
    """
    batch = ParsedBatch(records=len(records))
    for sequence_number, record in _in_stream_order(records):
        try:
            change = parse_change(record, sequence_number)
            cache_key = rules.keys.cache_key(change.table, change.keys)
        except KeyTemplateMismatch as mismatch:
            batch.rejected.append(RejectedRecord(sequence_number_of(record), mismatch.cause))
            continue
        except PoisonRecordError as poison:
            _add_poison(batch, record, poison.reason, rules)
            continue
        except Exception as error:  # a reading defect must cost one record, never the batch (tests expect none)
            _add_poison(batch, record, f"{UNREADABLE_RECORD} ({type(error).__name__})", rules)
            continue
        batch.by_key.setdefault(cache_key, []).append(change)
    return batch


def _add_poison(batch: ParsedBatch, record: Any, reason: str, rules: ChangeRules) -> None:
    entry = PoisonRecord(sequence_number_of(record), reason, record)
    cache_key = _cache_key_of_poison(record, rules)
    if cache_key is None:
        batch.unkeyed_poison.append(entry)
    else:
        batch.by_key.setdefault(cache_key, []).append(entry)


def items_to_read(batch: ParsedBatch) -> list[ItemRead]:
    """The items to read from the table: keys whose last change is an INSERT/MODIFY without a new image."""
    reads = []
    for cache_key, entries in batch.by_key.items():
        last = entries[-1]
        if isinstance(last, Change) and last.needs_table_read:
            reads.append(ItemRead(cache_key, last.table, last.keys))
    return reads


def plan_batch(
    batch: ParsedBatch,
    rules: ChangeRules,
    now: float,
    current_items: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Plan:
    """The plan for a parsed batch. ``current_items`` holds the table reads (cache key to item, None when gone)."""
    key_plans: list[KeyPlan] = []
    poison: list[PoisonRecord] = list(batch.unkeyed_poison)
    for cache_key, entries in batch.by_key.items():
        changes: list[KeyChange] = []
        for entry in entries:
            if isinstance(entry, PoisonRecord):
                poison.append(entry)
                changes.append(KeyChange(entry.sequence_number or "", entry.record, None, entry.reason))
                continue
            try:
                message = rules.messages.change_message(entry, cache_key)
            except PoisonRecordError as error:
                poison.append(PoisonRecord(entry.sequence_number, error.reason, entry.record))
                changes.append(KeyChange(entry.sequence_number, entry.record, None, error.reason))
                continue
            changes.append(KeyChange(entry.sequence_number, entry.record, message))
        writer = changes[-1]
        write = None  # a poison last change leaves the key deleted: the cache never holds a state the table left
        if writer.poison_reason is None:
            last = entries[-1]
            assert isinstance(last, Change)
            try:
                write = _final_write(last, cache_key, rules, now, current_items)
            except InvalidAttributeValue as error:  # pragma: no cover - the message already validated the image
                reason = f"malformed record: {error}"
                poison.append(PoisonRecord(writer.sequence_number, reason, writer.record))
                writer = KeyChange(writer.sequence_number, writer.record, None, reason)
                changes[-1] = writer
        key_plans.append(KeyPlan(cache_key, write, writer, tuple(changes)))
    return Plan(tuple(key_plans), tuple(poison), tuple(batch.rejected), batch.records)


def _final_write(
    change: Change,
    cache_key: str,
    rules: ChangeRules,
    now: float,
    current_items: Mapping[str, Mapping[str, Any] | None] | None,
) -> SetItem | None:
    if change.event_name == "REMOVE":
        return None
    if change.new_image is not None:
        return rules.cache_write(change.new_image, now, change.new_image_json)
    if current_items is None or cache_key not in current_items:
        raise LookupError(f"no table read for {cache_key!r}: call items_to_read() and pass current_items")
    return rules.cache_write(current_items[cache_key], now)


def _cache_key_of_poison(record: Any, rules: ChangeRules) -> str | None:
    """The cache key of a poison record when its keys and table can still be read, so it keeps its place in order."""
    try:
        keys = record["dynamodb"]["Keys"]
        table = table_name_of(record.get("eventSourceARN"))
        if table is None or not isinstance(keys, Mapping) or not keys:
            return None
        return rules.keys.cache_key(table, keys)
    except (LookupError, TypeError, AttributeError, ValueError, PoisonRecordError, KeyTemplateMismatch):
        return None


def _in_stream_order(records: Iterable[Any]) -> list[tuple[str | None, Any]]:
    """Records with their sequence numbers, sorted by them (Lambda sends them in order; this guards hand-made events).

    The sort is stable (records with equal sequence numbers keep their order) and never converts a sequence number
    to int (Python refuses texts over 4,300 digits); records without one (poison) come first.
    """
    numbered = [(sequence_number_of(record), record) for record in records]
    keys = [(-1, "") if number is None else stream_order(number) for number, _ in numbered]
    if all(a <= b for a, b in itertools.pairwise(keys)):
        return numbered
    return [pair for _, pair in sorted(zip(keys, numbered, strict=True), key=lambda keyed: keyed[0])]
