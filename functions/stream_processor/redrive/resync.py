"""The keys of one queue message as out-of-band resyncs: the item read from the table, and what to publish.

Old images are never replayed: they could overwrite newer state. Each affected key is resynced from the source of
truth, the table: its current item (strongly consistent reads) goes through the stream's key, value and TTL rules,
and ``KeySync.resync`` writes it and re-reads it until it holds still. Then every affected record of the key is
published in stream order with ``"redriven": true``: its change message, or, when the record cannot be read as a
change (an unknown eventName, a malformed image, a backfill poison item) or its message cannot be built, a resync
message describing the state the key settled on — ``eventName`` ``"RESYNC"``, the record's ``eventID`` and
``sequenceNumber`` when it has them (else ""), ``table``, ``key``, ``keys``, ``newImage`` = the item (absent when
the table no longer holds it), ``expired`` (true when the item's TTL has passed), ``"redriven": true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_processor.changes import Change, PoisonRecordError, sequence_number_of, table_name_of
from stream_processor.key_sync import LiveKey
from stream_processor.planner import ChangeRules, KeyChange, PoisonRecord
from stream_processor.table_reads import TableReader

__all__ = ["RESYNC_EVENT", "KeyWork"]

RESYNC_EVENT = "RESYNC"

Entry = Change | PoisonRecord


@dataclass
class KeyWork:
    """One affected cache key of a message: where its item lives, and its entries in stream order."""

    cache_key: str
    table: str
    keys: Mapping[str, Any]
    entries: list[Entry]
    #: Records whose message (change or resync) cannot be built at all: they go back to the queue as poison.
    unpublishable: list[PoisonRecord] = field(default_factory=list)

    @classmethod
    def of(cls, cache_key: str, entries: list[Entry], table_name: str | None) -> KeyWork:
        first = entries[0]
        if isinstance(first, Change):
            table, keys = first.table, first.keys
        else:  # the planner keyed this poison record, so its keys and ARN are readable
            table = table_name_of(first.record.get("eventSourceARN")) or ""
            keys = first.record["dynamodb"]["Keys"]
        return cls(cache_key, table_name or table, keys, entries)

    def live_key(self, item: Mapping[str, Any] | None, rules: ChangeRules, now: float, reader: TableReader) -> LiveKey:
        """The key as ``KeySync.resync`` takes it: written from ``item``, re-read from the table, then published."""
        last = self.entries[-1]
        return LiveKey(
            cache_key=self.cache_key,
            item=item,
            reread=lambda: asyncio.to_thread(reader.get, self.table, self.keys),
            cache_write=lambda current: rules.cache_write(current, now),
            blame=KeyChange(sequence_number_of(last.record) or "", last.record, None),
            changes=lambda current: self.changes(current, rules, now),
        )

    def changes(self, item: Mapping[str, Any] | None, rules: ChangeRules, now: float) -> list[KeyChange]:
        """Every entry's redriven message for the state the key settled on, in stream order."""
        self.unpublishable.clear()
        out = []
        for entry in self.entries:
            message, reason = self.message(entry, item, rules, now)
            if message is None:
                self.unpublishable.append(PoisonRecord(sequence_number_of(entry.record), reason, entry.record))
            out.append(KeyChange(sequence_number_of(entry.record) or "", entry.record, message, reason))
        return out

    def message(
        self, entry: Entry, item: Mapping[str, Any] | None, rules: ChangeRules, now: float
    ) -> tuple[bytes | None, str]:
        """The entry's change message, else a resync message, else (None, why neither can be built)."""
        if isinstance(entry, Change):
            try:
                return rules.messages.change_message(entry, self.cache_key, redriven=True), ""
            except PoisonRecordError:
                pass  # a malformed image, or a message that cannot fit: describe the resynced state instead
        try:
            resync = self._resync_change(entry, item, rules, now)
            return rules.messages.change_message(resync, self.cache_key, redriven=True), ""
        except PoisonRecordError as error:
            return None, error.reason

    def _resync_change(self, entry: Entry, item: Mapping[str, Any] | None, rules: ChangeRules, now: float) -> Change:
        record = entry.record if isinstance(entry.record, Mapping) else {}
        event_id = record.get("eventID")
        first = self.entries[0]
        table = first.table if isinstance(first, Change) else table_name_of(record.get("eventSourceARN")) or self.table
        return Change(
            record=record,
            sequence_number=sequence_number_of(record) or "",
            event_id=event_id if isinstance(event_id, str) else "",
            event_name=RESYNC_EVENT,  # type: ignore[arg-type]  # the documented resync message, not a stream event
            table=table,
            keys=self.keys,
            new_image=item,
            old_image=None,
            approximate_creation_time=None,
            stream_view_type=None,
            removed_by_ttl=item is not None and rules.cache_write(item, now) is None,
        )
