"""What a backfill run did: counts, the live-table re-checks, poison items, failures, and the CLI's report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BackfillSummary", "PoisonItem"]


@dataclass(frozen=True)
class PoisonItem:
    """An item the cache refuses for good: its cache key, why, and whether it reached the dead-letter queue."""

    cache_key: str
    reason: str
    dead_lettered: bool


@dataclass
class BackfillSummary:
    """What a run did (counts are for this run; ``items_total`` includes earlier runs of a resumed backfill)."""

    table: str
    segments: int
    complete: bool = False
    items: int = 0
    items_total: int = 0
    sets: int = 0
    deletes: int = 0
    retries: int = 0
    rechecks: int = 0  # consistent re-reads of items after their cache write (the live-table check)
    rewrites: int = 0  # writes again because an item changed between the scan and the write
    poison: list[PoisonItem] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # why a segment stopped before a page (no cache keys)
    failed_keys: dict[str, str] = field(default_factory=dict)  # cache key -> why its page must be redone
    stopped: str | None = None
    duration_seconds: float = 0.0

    def to_dict(self, *, with_keys: bool = True) -> dict[str, Any]:
        """The summary (the handler's response); ``with_keys=False`` (log lines) counts cache keys instead of naming
        them: keys are made of item attribute values, which log lines never carry."""
        poison: Any = [{"key": p.cache_key, "reason": p.reason, "deadLettered": p.dead_lettered} for p in self.poison]
        out: dict[str, Any] = {
            "table": self.table,
            "segments": self.segments,
            "complete": self.complete,
            "items": self.items,
            "itemsTotal": self.items_total,
            "sets": self.sets,
            "deletes": self.deletes,
            "retries": self.retries,
            "recheckReads": self.rechecks,
            "rewrites": self.rewrites,
            "poison": poison if with_keys else len(self.poison),
            "failures": self.failures,
            "failedKeys": self.failed_keys if with_keys else len(self.failed_keys),
            "durationSeconds": round(self.duration_seconds, 3),
        }
        if self.stopped:
            out["stopped"] = self.stopped
        return out

    def text(self) -> str:
        state = "complete" if self.complete else "INCOMPLETE"
        rows = [
            ("items this run", f"{self.items} (all runs: {self.items_total})"),
            ("cache sets", self.sets),
            ("cache deletes (expired items)", self.deletes),
            ("table re-reads after writes", self.rechecks),
            ("items written again (changed meanwhile)", self.rewrites),
            ("retries", self.retries),
            ("poison items", len(self.poison)),
        ]
        width = max(len(label) for label, _ in rows) + 2
        lines = [f"Backfill of {self.table} ({self.segments} segments): {state} in {self.duration_seconds:.1f} s"]
        lines += [f"  {label:<{width}}{value}" for label, value in rows]
        lines += [
            f"    - {p.cache_key}: {p.reason}{' (sent to the DLQ)' if p.dead_lettered else ''}" for p in self.poison
        ]
        lines += [f"  failure: {failure}" for failure in self.failures]
        lines += [f"    - {key}: {cause}" for key, cause in self.failed_keys.items()]
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        return "\n".join(lines)
