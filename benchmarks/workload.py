"""Synthetic DynamoDB Streams batches for the benchmark: INSERT records of a chosen size over distinct or hot keys.

Records have the shape Lambda delivers (eventSourceARN, ascending numeric sequence numbers, NEW_AND_OLD_IMAGES) so
they go through every step of the real handler. Sizes are seeded, so every run sends the same bytes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["STREAM_ARN", "TYPICAL_ITEMS", "BatchShape", "stream_batch", "stream_batch_json"]

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/BenchTable/stream/2024-01-01T00:00:00.000"
_FIRST_SEQUENCE_NUMBER = 10**20  # real sequence numbers are 21-digit numeric strings
_CREATED = 1_700_000_000
#: Item sizes whose change messages are about 300 bytes (312 to 360), the typical case the figures are stated for.
TYPICAL_ITEMS = {"min_item_bytes": 40, "max_item_bytes": 120}


@dataclass(frozen=True)
class BatchShape:
    """What a batch looks like: how many records, over how many keys, and the item sizes (bytes of the NewImage)."""

    records: int
    keys: int | None = None  # None: every record has its own key
    min_item_bytes: int = 200
    max_item_bytes: int = 1000
    key_prefix: str = "item"
    seed: int = 0

    @property
    def distinct_keys(self) -> int:
        return self.records if self.keys is None else min(self.keys, self.records)


def stream_batch(shape: BatchShape) -> dict[str, Any]:
    """A Lambda event ``{"Records": [...]}`` of INSERT records; with hot keys, records cycle over ``shape.keys``."""
    return {"Records": list(_records(shape))}


def stream_batch_json(shape: BatchShape) -> bytes:
    """The same event as JSON bytes, built record by record (as the Lambda runtime receives it, never whole twice)."""
    parts = [b'{"Records":[']
    for index, record in enumerate(_records(shape)):
        if index:
            parts.append(b",")
        parts.append(json.dumps(record, separators=(",", ":")).encode("utf-8"))
    parts.append(b"]}")
    return b"".join(parts)


def _records(shape: BatchShape):
    rng = random.Random(shape.seed)
    keys = shape.distinct_keys
    for index in range(shape.records):
        key = f"{shape.key_prefix}-{index % keys:06d}"
        size = rng.randint(shape.min_item_bytes, shape.max_item_bytes)
        yield _insert_record(index, key, size)


def _insert_record(index: int, key: str, item_bytes: int) -> dict[str, Any]:
    image: dict[str, Any] = {
        "pk": {"S": key},
        "version": {"N": str(index)},
        "status": {"S": "active"},
        "payload": {"S": ""},
    }
    # Pad the payload so the image's DynamoDB JSON is about item_bytes long.
    overhead = len(json.dumps(image, separators=(",", ":")))
    image["payload"]["S"] = "x" * max(0, item_bytes - overhead)
    return {
        "eventID": f"{index:032x}",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
        "dynamodb": {
            "ApproximateCreationDateTime": _CREATED + index // 1000,
            "Keys": {"pk": {"S": key}},
            "NewImage": image,
            "SequenceNumber": str(_FIRST_SEQUENCE_NUMBER + index),
            "SizeBytes": item_bytes,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
