"""What the mapping did: each invocation, each discarded batch, and the totals of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .on_failure import FailureCondition
from .responses import InvocationOutcome

__all__ = ["DiscardedBatch", "Invocation", "MappingReport"]


@dataclass(frozen=True)
class Invocation:
    """One invocation of the handler: which records it carried (from which lane of the shard) and how it ended."""

    request_id: str
    shard_id: str
    first_sequence_number: str
    last_sequence_number: str
    size: int
    outcome: InvocationOutcome
    approximate_invoke_count: int
    error: str | None = None
    lane: int = 0


@dataclass(frozen=True)
class DiscardedBatch:
    """Records skipped after exhausted retries or by age, and the on-failure message describing them."""

    condition: FailureCondition
    shard_id: str
    first_sequence_number: str
    last_sequence_number: str
    size: int
    message: dict[str, Any]
    sent: bool
    lane: int = 0


@dataclass
class MappingReport:
    """What one run did; ``checkpoints`` is each shard's last processed sequence number after it."""

    invocation_log: list[Invocation] = field(default_factory=list)
    discarded: list[DiscardedBatch] = field(default_factory=list)
    batches_retried: int = 0
    bisections: int = 0
    records_filtered: int = 0
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    caught_up: bool = True

    @property
    def invocations(self) -> int:
        return len(self.invocation_log)

    @property
    def records_delivered(self) -> int:
        """Records handed to the handler, counting every re-delivery."""
        return sum(invocation.size for invocation in self.invocation_log)

    @property
    def records_discarded(self) -> int:
        """Records skipped after exhausted retries or by age, whether or not a destination is configured."""
        return sum(batch.size for batch in self.discarded)

    @property
    def records_sent_to_on_failure_destination(self) -> int:
        return sum(batch.size for batch in self.discarded if batch.sent)

    @property
    def failure_messages_sent(self) -> int:
        return sum(batch.sent for batch in self.discarded)

    def extend(self, later: MappingReport) -> None:
        """Add a later report of the same mapping to this one (checkpoints and ``caught_up`` become the later's)."""
        self.invocation_log.extend(later.invocation_log)
        self.discarded.extend(later.discarded)
        self.batches_retried += later.batches_retried
        self.bisections += later.bisections
        self.records_filtered += later.records_filtered
        self.checkpoints = dict(later.checkpoints)
        self.caught_up = later.caught_up
