"""Cache TTLs: how long a cache entry lives, from the configured default or the item's own DynamoDB TTL attribute.

DynamoDB TTL is an epoch-seconds number on the item. DynamoDB deletes expired items lazily (sometimes days later) and
ignores values more than five years in the past, so an item whose TTL has passed is treated as gone (its cache entry
deleted) unless the value is that old, in which case DynamoDB keeps the item and so does the cache.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EXPIRED", "TtlPolicy"]

#: Marker: the item's TTL has passed, so the entry must be deleted rather than set.
EXPIRED = None
_FIVE_YEARS_SECONDS = 5 * 365 * 86400


@dataclass(frozen=True, slots=True)
class TtlPolicy:
    """The TTL rules: default and maximum in seconds, and the optional item TTL attribute."""

    default_seconds: int
    max_seconds: int
    attribute: str | None = None

    def ttl_milliseconds(self, image: Mapping[str, Any], now: float) -> int | None:
        """The cache TTL of an item in whole milliseconds, or ``EXPIRED`` (None) when its DynamoDB TTL has passed."""
        cap_ms = self.max_seconds * 1000
        expires_at = self._expires_at(image)
        if expires_at is None or expires_at < now - _FIVE_YEARS_SECONDS:
            return min(self.default_seconds * 1000, cap_ms)
        remaining_ms = int((expires_at - now) * 1000)
        if remaining_ms <= 0:
            return EXPIRED
        return min(remaining_ms, cap_ms)

    def _expires_at(self, image: Mapping[str, Any]) -> float | None:
        if self.attribute is None:
            return None
        value = image.get(self.attribute)
        if not isinstance(value, Mapping) or "N" not in value:
            return None  # DynamoDB ignores a TTL attribute that is not a number; so do we
        try:
            expires_at = float(value["N"])
        except (TypeError, ValueError):
            return None
        return expires_at if math.isfinite(expires_at) else None  # NaN/Infinity are not DynamoDB numbers
