"""Table reads: the current items of keys whose stream records carry no new image (KEYS_ONLY, OLD_IMAGE streams).

One strongly consistent ``BatchGetItem`` per batch (chunks of 100 keys, unprocessed keys retried); a key the table no
longer holds maps to None, which the planner turns into a cache delete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stream_processor.dynamodb_json import attribute_map_json
from stream_processor.planner import ItemRead

__all__ = ["TableReadError", "TableReader"]

_MAX_KEYS = 100  # BatchGetItem limit per call


class TableReadError(RuntimeError):
    """The table could not be read (after boto3's retries and ours); the affected records are reported."""


class TableReader:
    """Reads current items by key with BatchGetItem (the boto3 client is created on first use)."""

    def __init__(self, client_factory: Callable[[], Any] | None = None, max_rounds: int = 8) -> None:
        self._client_factory = client_factory or _dynamodb_client
        self._client = None
        self.max_rounds = max_rounds

    @property
    def client(self):
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def read(self, reads: Sequence[ItemRead]) -> dict[str, Mapping[str, Any] | None]:
        """Cache key to current item (None when the item is gone) for every requested read."""
        wanted: dict[tuple[str, str], ItemRead] = {}
        for read in reads:
            wanted[(read.table, attribute_map_json(dict(sorted(read.keys.items()))))] = read
        found: dict[str, Mapping[str, Any] | None] = {read.cache_key: None for read in reads}
        refs = list(wanted.items())
        for start in range(0, len(refs), _MAX_KEYS):
            chunk = refs[start : start + _MAX_KEYS]
            request: dict[str, dict[str, Any]] = {}
            for (table, _), read in chunk:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(dict(read.keys))
            key_names = {table: tuple(sorted(read.keys)) for (table, _), read in chunk}
            for table, items in self._batch_get(request).items():
                for item in items:
                    read = wanted.get((table, _canonical(item, key_names[table])))
                    if read is not None:
                        found[read.cache_key] = item
        return found

    def _batch_get(self, request: dict[str, dict[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
        results: dict[str, list[Mapping[str, Any]]] = {}
        for round_number in range(self.max_rounds):
            try:
                response = self.client.batch_get_item(RequestItems=request)
            except Exception as error:
                raise TableReadError(f"BatchGetItem failed: {type(error).__name__}: {error}") from error
            for table, items in response.get("Responses", {}).items():
                results.setdefault(table, []).extend(items)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return results
            time.sleep(min(1.0, 0.05 * 2**round_number))
        raise TableReadError(f"BatchGetItem left keys unprocessed after {self.max_rounds} rounds (throttled)")


def _canonical(item: Mapping[str, Any], key_names: Sequence[str]) -> str:
    return attribute_map_json({name: item[name] for name in key_names if name in item})


def _dynamodb_client():
    import boto3  # imported only for streams without new images

    return boto3.client("dynamodb")
