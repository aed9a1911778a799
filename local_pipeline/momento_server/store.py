"""In-memory state of the local Momento server: caches with expiring items, and the log of every topic message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


class CacheNotFoundError(KeyError):
    """The call names a cache that does not exist."""


@dataclass(frozen=True)
class StoredItem:
    value: bytes
    expires_at: float | None  # on the store's clock; None never expires


class MomentoStore:
    """Caches, items and topic logs behind one lock (calls arrive on the server's loop, inspection from tests)."""

    def __init__(self, caches: Iterable[str] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._caches: dict[str, dict[bytes, StoredItem]] = {name: {} for name in caches}
        self._topics: dict[tuple[str, str], list[bytes]] = {}

    # --- caches -------------------------------------------------------------------------------------------

    def create_cache(self, name: str) -> bool:
        """Create a cache; False when it already exists."""
        with self._lock:
            if name in self._caches:
                return False
            self._caches[name] = {}
            return True

    def delete_cache(self, name: str) -> None:
        with self._lock:
            if self._caches.pop(name, None) is None:
                raise CacheNotFoundError(name)
            for topic in [topic for topic in self._topics if topic[0] == name]:
                del self._topics[topic]

    def flush_cache(self, name: str) -> None:
        with self._lock:
            self._cache(name).clear()

    def cache_names(self) -> list[str]:
        with self._lock:
            return sorted(self._caches)

    def has_cache(self, name: str) -> bool:
        return name in self._caches

    def reset(self, caches: Iterable[str]) -> None:
        """Forget every cache, item and message; keep only empty `caches`."""
        with self._lock:
            self._caches = {name: {} for name in caches}
            self._topics = {}

    # --- items --------------------------------------------------------------------------------------------

    def get(self, cache: str, key: bytes) -> bytes | None:
        with self._lock:
            item = self._live(self._cache(cache), key)
            return None if item is None else item.value

    def set(self, cache: str, key: bytes, value: bytes, ttl_milliseconds: int) -> None:
        with self._lock:
            self._cache(cache)[key] = StoredItem(value, self._expiry(ttl_milliseconds))

    def set_if_not_exists(self, cache: str, key: bytes, value: bytes, ttl_milliseconds: int) -> bool:
        """Store unless a live item holds the key; True when stored."""
        with self._lock:
            items = self._cache(cache)
            if self._live(items, key) is not None:
                return False
            items[key] = StoredItem(value, self._expiry(ttl_milliseconds))
            return True

    def delete(self, cache: str, key: bytes) -> None:
        with self._lock:
            self._cache(cache).pop(key, None)

    def items(self, cache: str) -> dict[bytes, StoredItem]:
        """Live items of a cache."""
        with self._lock:
            now = self._clock()
            return {
                key: item
                for key, item in self._cache(cache).items()
                if item.expires_at is None or item.expires_at > now
            }

    def ttl_remaining(self, cache: str, key: bytes) -> float | None:
        """Seconds until the item expires; None when it is missing (or has no expiry)."""
        with self._lock:
            item = self._live(self._cache(cache), key)
            if item is None or item.expires_at is None:
                return None
            return item.expires_at - self._clock()

    # --- topics -------------------------------------------------------------------------------------------

    def publish(self, cache: str, topic: str, value: bytes) -> int:
        """Append a message to the topic's log; returns its topic sequence number (1, 2, ...)."""
        with self._lock:
            self._cache(cache)
            log = self._topics.setdefault((cache, topic), [])
            log.append(value)
            return len(log)

    def published(self, cache: str, topic: str) -> list[bytes]:
        with self._lock:
            return list(self._topics.get((cache, topic), ()))

    # --- internals (lock held) ----------------------------------------------------------------------------

    def _cache(self, name: str) -> dict[bytes, StoredItem]:
        items = self._caches.get(name)
        if items is None:
            raise CacheNotFoundError(name)
        return items

    def _live(self, items: dict[bytes, StoredItem], key: bytes) -> StoredItem | None:
        item = items.get(key)
        if item is not None and item.expires_at is not None and item.expires_at <= self._clock():
            del items[key]  # expired items are dropped lazily, on the next read
            return None
        return item

    def _expiry(self, ttl_milliseconds: int) -> float | None:
        # The SDK always sends a positive TTL; 0 (a bare gRPC client) means "no expiry" here.
        return self._clock() + ttl_milliseconds / 1000.0 if ttl_milliseconds > 0 else None
