"""Change messages: the compact JSON published to the topic for every change, kept under the topic's size limit.

Momento topic messages are limited (4 KiB by default). A message that would exceed ``TOPIC_MAX_BYTES`` is sent
without its images and with ``"truncated": true``; if even that is too large it carries only eventName, eventID,
sequenceNumber, table, key and expired; a change whose message cannot fit at all is a poison record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_processor.changes import Change, PoisonRecordError
from stream_processor.dynamodb_json import InvalidAttributeValue, RawJson, attribute_map_json, json_object, project

__all__ = ["MessageFormat"]


@dataclass(frozen=True, slots=True)
class MessageFormat:
    """How change messages are built: the attribute projection and the size limit."""

    max_bytes: int = 4096
    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    def change_message(self, change: Change, cache_key: str, *, redriven: bool = False) -> bytes:
        """The encoded change message; raises ``PoisonRecordError`` when the change cannot be encoded or fit."""
        try:
            keys = RawJson(change.keys_json or attribute_map_json(change.keys, "dynamodb.Keys"))
            written = change.new_image_json
            new_image = self._image(
                change.new_image, None if written is None else written.decode(), "dynamodb.NewImage"
            )
            old_image = self._image(change.old_image, change.old_image_json, "dynamodb.OldImage")
        except InvalidAttributeValue as error:
            raise PoisonRecordError(f"malformed record: {error}") from None
        head = [
            ("eventName", change.event_name),
            ("eventID", change.event_id),
            ("sequenceNumber", change.sequence_number),
            ("table", change.table),
            ("key", cache_key),
        ]
        tail = [("expired", change.removed_by_ttl)]
        if redriven:
            tail.append(("redriven", True))
        created = change.approximate_creation_time
        dated = [("approximateCreationDateTime", created)] if created is not None else []
        full = [*head, ("keys", keys)]
        if new_image is not None:
            full.append(("newImage", new_image))
        if old_image is not None:
            full.append(("oldImage", old_image))
        encoded = json_object([*full, *dated, *tail]).encode("utf-8")
        if len(encoded) <= self.max_bytes:
            return encoded
        for members in (  # too large: without the images, then the identifying fields only (the minimal form)
            [*head, ("keys", keys), *dated, *tail, ("truncated", True)],
            [*head, *tail],
        ):
            encoded = json_object(members).encode("utf-8")
            if len(encoded) <= self.max_bytes:
                return encoded
        raise PoisonRecordError(
            f"change message cannot fit the topic limit of {self.max_bytes} bytes even without images "
            f"(cache key of {len(cache_key.encode('utf-8'))} bytes)"
        )

    def _image(self, image: Mapping[str, Any] | None, written: str | None, where: str) -> RawJson | None:
        """The image projected, as JSON; ``written`` is its JSON text when already known (used when nothing is left
        out)."""
        if image is None:
            return None
        if written is not None and self.include is None and not self.exclude:
            return RawJson(written)
        return RawJson(attribute_map_json(project(image, self.include, self.exclude), where))
