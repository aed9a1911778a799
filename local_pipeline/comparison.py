"""Cache against table, key by key: does the Momento cache hold exactly what the table holds?

The table is the source of truth. An item whose TTL has passed counts as absent: the stream processor deletes its
cache entry, while DynamoDB keeps the item until its TTL sweep (lazily, sometimes days later). Values are compared
as plain data, numbers as ``Decimal`` on both sides, so the check does not depend on the cache's JSON formatting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from local_pipeline.weather import is_expired

__all__ = ["Comparison", "KeyState", "TableState", "compare"]


class TableState(StrEnum):
    LIVE = "live"
    EXPIRED = "expired"  # still in the table, past its TTL: must be absent from the cache
    ABSENT = "absent"


@dataclass(frozen=True)
class KeyState:
    """One key: the table's item and state, the cache's value (None when absent), and whether they agree."""

    key: str
    table_state: TableState
    table_item: dict[str, Any] | None
    cache_item: dict[str, Any] | None
    cache_error: str | None = None  # the cache value is not the JSON object a cache value must be

    @property
    def equal(self) -> bool:
        if self.cache_error is not None:
            return False
        expected = self.table_item if self.table_state is TableState.LIVE else None
        return expected == self.cache_item


@dataclass(frozen=True)
class Comparison:
    """Every key's state, in the order the keys were given."""

    keys: list[KeyState]

    @property
    def differing(self) -> list[KeyState]:
        return [state for state in self.keys if not state.equal]

    @property
    def all_equal(self) -> bool:
        return not self.differing

    def count(self, table_state: TableState) -> int:
        return sum(state.table_state is table_state for state in self.keys)


def compare(
    keys: Iterable[str], table_items: Mapping[str, dict[str, Any]], cache_items: Mapping[str, bytes], now: float
) -> Comparison:
    """Compare ``keys`` plus any other key either side holds; ``table_items`` as plain values, the cache raw."""
    ordered = list(dict.fromkeys([*keys, *sorted(table_items), *sorted(cache_items)]))
    states = []
    for key in ordered:
        item = table_items.get(key)
        if item is None:
            table_state = TableState.ABSENT
        else:
            table_state = TableState.EXPIRED if is_expired(item, now) else TableState.LIVE
        raw = cache_items.get(key)
        cache_item, error = (None, None) if raw is None else _decode(raw)
        states.append(KeyState(key, table_state, item, cache_item, error))
    return Comparison(states)


def _decode(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
    except ValueError as error:
        return None, f"not JSON: {error}"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, None
