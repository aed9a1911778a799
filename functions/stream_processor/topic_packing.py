"""Packed topic messages: consecutive change messages joined into one topic message of at most ``TOPIC_MAX_BYTES``.

Momento counts every publish, and every delivery of it to every subscriber, as one topic operation (100 per second
per namespace by default), and the SDK makes one call per publish. Joining about a dozen ~300-byte change messages
into one 4 KiB topic message divides both by that factor.

The format is a JSON array of change messages in publish order: ``[{...},{...}]``, each element exactly the change
message the default mode would have published alone. Any JSON parser reads it as one document (a browser's
``JSON.parse``, Python's ``json.loads``), and the parsed type tells the modes apart: an array is packed, an object is
a single change message (``stream_processor.change_feed`` decodes both). The brackets take two bytes, so in packed
mode each change message is built for ``TOPIC_MAX_BYTES - 2`` (``change_message_limit``): a lone change message
always fits in a pack of its own, and the truncation rules of single messages apply unchanged.

Pure code, no I/O. The executor hands over the change messages of keys whose cache write has landed (each key's
messages in stream order; keys in any order), publishes the packs, and reports failures. Order per key holds when a
pack is published only after every pack in its ``follows`` (the earlier packs holding one of its keys) has been
published; packs that share no key may be in flight together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "PACK_FRAMING_BYTES",
    "TopicPack",
    "TopicPacker",
    "change_message_limit",
    "earliest_unpublished",
    "pack_change_messages",
    "unpublished_packs",
]

#: The array's brackets: the room a lone change message needs besides its own bytes.
PACK_FRAMING_BYTES = 2
_SEPARATOR = b","


def change_message_limit(topic_max_bytes: int, packed: bool) -> int:
    """The size limit ``MessageFormat`` must build change messages for, so that every one can be published."""
    return topic_max_bytes - PACK_FRAMING_BYTES if packed else topic_max_bytes


@dataclass(frozen=True, slots=True)
class TopicPack:
    """One packed topic message and what it carries.

    ``changes`` are the positions, in the packer's input, of the change messages it carries (in order) and ``keys``
    their cache keys (parallel to ``changes``); ``follows`` are the positions, among the packs, of the earlier packs
    that must be published before this one: for each of its keys, the previous pack that holds that key.
    """

    payload: bytes
    changes: tuple[int, ...]
    keys: tuple[str, ...]
    follows: tuple[int, ...]

    @property
    def text(self) -> str:
        """The payload as the text a topic publish sends (change messages are UTF-8 JSON)."""
        return self.payload.decode("utf-8")


class TopicPacker:
    """Packs change messages as they come, in the order given; a pack closes when the next message does not fit.

    Example::

        packer = TopicPacker(4096)
        packs = [pack for key, message in ready for pack in [packer.add(key, message)] if pack]
        packs += filter(None, [packer.flush()])
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < PACK_FRAMING_BYTES + 1:
            raise ValueError(f"a topic message of {max_bytes} bytes cannot hold a change message")
        self.max_bytes = max_bytes
        self._messages: list[bytes] = []
        self._positions: list[int] = []
        self._keys: list[str] = []
        self._size = PACK_FRAMING_BYTES
        self._added = 0
        self._packs = 0
        self._last_pack_of: dict[str, int] = {}

    def add(self, cache_key: str, message: bytes) -> TopicPack | None:
        """Queue one change message; returns the pack it closed (when it did not fit there), else None.

        Raises ``ValueError`` for a message that cannot fit even alone (longer than ``max_bytes - 2``): change
        messages must be built for ``change_message_limit(max_bytes, packed=True)``.
        """
        if len(message) + PACK_FRAMING_BYTES > self.max_bytes:
            raise ValueError(
                f"change message of {len(message)} bytes cannot fit a topic message of {self.max_bytes} bytes "
                f"(build change messages for {self.max_bytes - PACK_FRAMING_BYTES} bytes in packed mode)"
            )
        closed = None
        grown = self._size + len(message) + (len(_SEPARATOR) if self._messages else 0)
        if grown > self.max_bytes:
            closed = self.flush()
            grown = PACK_FRAMING_BYTES + len(message)
        self._messages.append(message)
        self._positions.append(self._added)
        self._keys.append(cache_key)
        self._size = grown
        self._added += 1
        return closed

    def flush(self) -> TopicPack | None:
        """Close the open pack, if any message is queued; returns it."""
        if not self._messages:
            return None
        position = self._packs
        follows = sorted({self._last_pack_of[key] for key in self._keys if key in self._last_pack_of})
        for key in self._keys:
            self._last_pack_of[key] = position
        pack = TopicPack(
            payload=b"[" + _SEPARATOR.join(self._messages) + b"]",
            changes=tuple(self._positions),
            keys=tuple(self._keys),
            follows=tuple(follows),
        )
        self._messages, self._positions, self._keys = [], [], []
        self._size = PACK_FRAMING_BYTES
        self._packs += 1
        return pack


def pack_change_messages(changes: Iterable[tuple[str, bytes]], max_bytes: int) -> list[TopicPack]:
    """Pack ``(cache key, change message)`` pairs, in the order given, into topic messages of at most ``max_bytes``.

    Each key's messages must come in stream order (keys may interleave in any way). Every message lands in exactly
    one pack; reading the packs in list order gives the input order back.
    """
    packer = TopicPacker(max_bytes)
    packs = [pack for cache_key, message in changes if (pack := packer.add(cache_key, message)) is not None]
    last = packer.flush()
    return [*packs, last] if last is not None else packs


def unpublished_packs(packs: Sequence[TopicPack], failed: Iterable[int]) -> set[int]:
    """The packs that stay unpublished when the packs ``failed`` fail: those, and every pack that follows one."""
    unpublished = set(failed)
    for position, pack in enumerate(packs):  # follows always point backwards, so one pass reaches every follower
        if position not in unpublished and unpublished.intersection(pack.follows):
            unpublished.add(position)
    return unpublished


def earliest_unpublished(packs: Sequence[TopicPack], failed: Iterable[int]) -> dict[str, int]:
    """Per cache key, the position of its earliest change left unpublished when the packs ``failed`` fail.

    A key's published changes are then exactly the ones before that position: reporting its record lets Lambda
    retry from there without a gap in any key's order.
    """
    earliest: dict[str, int] = {}
    for position in sorted(unpublished_packs(packs, failed)):
        for change, key in zip(packs[position].changes, packs[position].keys, strict=True):
            if change < earliest.get(key, change + 1):
                earliest[key] = change
    return earliest
