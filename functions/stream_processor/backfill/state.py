"""The resumable state of a backfill: where each scan segment stands (JSON-safe: binary keys as base64 text)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_SEGMENTS", "BackfillState", "SegmentPosition", "key_from_json", "key_to_json"]

MAX_SEGMENTS = 1_000_000  # DynamoDB's TotalSegments limit


@dataclass
class SegmentPosition:
    """Where one segment's scan stands: the key to start the next page after, and whether it is finished."""

    segment: int
    last_evaluated_key: dict[str, Any] | None = None
    done: bool = False
    items: int = 0


@dataclass
class BackfillState:
    """One position per segment; advanced only after a whole page is in the cache."""

    table: str
    total_segments: int
    positions: list[SegmentPosition]

    @classmethod
    def new(cls, table: str, total_segments: int) -> BackfillState:
        if not 1 <= total_segments <= MAX_SEGMENTS:
            raise ValueError(f"segments must be between 1 and {MAX_SEGMENTS}, got {total_segments}")
        return cls(table, total_segments, [SegmentPosition(segment) for segment in range(total_segments)])

    @property
    def complete(self) -> bool:
        return all(position.done for position in self.positions)

    @property
    def items(self) -> int:
        return sum(position.items for position in self.positions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "segments": self.total_segments,
            "complete": self.complete,
            "positions": [
                {
                    "segment": p.segment,
                    "lastEvaluatedKey": None if p.last_evaluated_key is None else key_to_json(p.last_evaluated_key),
                    "done": p.done,
                    "items": p.items,
                }
                for p in self.positions
            ],
        }

    @classmethod
    def from_dict(cls, data: Any) -> BackfillState:
        """The state a previous run returned or wrote; ``ValueError`` when it is not one."""
        try:
            table, total = data["table"], data["segments"]
            positions = [
                SegmentPosition(
                    segment=int(p["segment"]),
                    last_evaluated_key=None
                    if p.get("lastEvaluatedKey") is None
                    else key_from_json(p["lastEvaluatedKey"]),
                    done=bool(p.get("done", False)),
                    items=int(p.get("items", 0)),
                )
                for p in data["positions"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not a backfill resume state: {type(error).__name__}: {error}") from None
        if (
            not isinstance(table, str)
            or not isinstance(total, int)
            or sorted(p.segment for p in positions) != list(range(total))
        ):
            raise ValueError("not a backfill resume state: table, segments and one position per segment are required")
        return cls(table, total, sorted(positions, key=lambda p: p.segment))


def key_to_json(key: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB key (S, N or B values) as JSON: boto3's bytes become base64 text."""
    return {
        name: {"B": base64.b64encode(value["B"]).decode("ascii")} if isinstance(value.get("B"), bytes) else dict(value)
        for name, value in key.items()
    }


def key_from_json(key: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``key_to_json``: boto3 wants bytes for B values."""
    return {
        name: {"B": base64.b64decode(value["B"])} if isinstance(value.get("B"), str) else dict(value)
        for name, value in key.items()
    }
