"""Table reads: current items, strongly consistent, for keys whose stream records carry no new image (KEYS_ONLY,
OLD_IMAGE streams), for the redrive's resyncs, and for the re-check after every out-of-band cache write.

``read``: one ``BatchGetItem`` per chunk of 100 keys, unprocessed keys retried; ``get``: one ``GetItem``. A key the
table no longer holds maps to None, which becomes a cache delete.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stream_processor.dynamodb_json import attribute_map_json
from stream_processor.planner import ItemRead

__all__ = ["TableReadError", "TableReader", "request_key"]

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
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(request_key(read.keys))
            key_names = {table: tuple(sorted(read.keys)) for (table, _), read in chunk}
            for table, items in self._batch_get(request).items():
                for item in items:
                    read = wanted.get((table, _canonical(item, key_names[table])))
                    if read is not None:
                        found[read.cache_key] = item
        return found

    def get(self, table: str, keys: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The item with these key attributes now (strongly consistent), or None when the table does not hold it."""
        try:
            response = self.client.get_item(TableName=table, Key=request_key(keys), ConsistentRead=True)
        except Exception as error:
            raise TableReadError(f"GetItem failed: {type(error).__name__}: {error}") from error
        return response.get("Item")

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


def request_key(keys: Mapping[str, Any]) -> dict[str, Any]:
    """Key attributes as boto3 sends them: the stream's base64 text of a B key becomes the bytes boto3 encodes."""
    return {
        name: {"B": base64.b64decode(value["B"])}
        if isinstance(value, Mapping) and isinstance(value.get("B"), str)
        else value
        for name, value in keys.items()
    }


def _canonical(item: Mapping[str, Any], key_names: Sequence[str]) -> str:
    return attribute_map_json({name: item[name] for name in key_names if name in item})


def _dynamodb_client():
    import boto3  # imported only for streams without new images

    return boto3.client("dynamodb")
