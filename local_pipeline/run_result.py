"""What a local run found, as plain data: the run (``demo``) fills it in, the report (``report``) prints it.

The counts keep one meaning each. A *change* is one stream record (one table write), counted once however often it
was delivered; a *record delivered* is one record in one invocation, so a retried batch delivers its records again.
The handler's counts are sums over its invocations (each invocation's ``batch processed`` log line), so they count
re-deliveries too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from local_pipeline.comparison import Comparison
from local_pipeline.event_source_mapping import DiscardedBatch, InvocationOutcome, MappingReport
from local_pipeline.handler_log import InvocationTotals
from local_pipeline.run_options import DemoOptions
from local_pipeline.weather import WriteKind

__all__ = [
    "CACHE_NAME",
    "DLQ_NAME",
    "REGION",
    "TABLE_NAME",
    "TOPIC_NAME",
    "DeadLetter",
    "DemoResult",
    "RedriveResult",
    "StreamChange",
    "TopicTally",
]

REGION = "us-east-1"
TABLE_NAME = "weather"
CACHE_NAME = "weather-cache"
TOPIC_NAME = "weather-changes"
DLQ_NAME = "weather-stream-dlq"


@dataclass(frozen=True)
class StreamChange:
    """A stream record as the handler received it: where it sits in the stream and which key it changed."""

    sequence_number: str
    event_id: str
    event_name: str
    key: str


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message: Lambda's on-failure record (metadata only) or a poison record (with the record)."""

    kind: str  # "on-failure", "poison-record" or "unknown"
    reason: str  # the on-failure condition (RetryAttemptsExhausted, ...), the poison reason, or the message itself
    sequence_numbers: tuple[str, ...]  # the stream records it stands for, in stream order
    keys: tuple[str, ...]
    invocations: int | None = None  # approximateInvokeCount of an on-failure record

    @property
    def records(self) -> int:
        return len(self.sequence_numbers)

    @property
    def first_sequence_number(self) -> int:
        """Where the message sits in the stream (messages are listed in stream order); -1 when it names no record."""
        return int(self.sequence_numbers[0]) if self.sequence_numbers else -1


@dataclass(frozen=True)
class TopicTally:
    """What reached the topic, from the server's log of accepted messages, and what the subscriber received."""

    accepted_by_server: int
    received: int  # by the subscriber
    distinct_changes: int  # changes with at least one accepted message
    duplicates: int
    redriven: int
    never_published: tuple[str, ...]  # sequence numbers of changes without any accepted message

    @property
    def missed_by_subscriber(self) -> int:
        return self.accepted_by_server - self.received


@dataclass(frozen=True)
class RedriveResult:
    """The redrive step: its summary text, what stayed in the DLQ, and the comparison after it."""

    summary_text: str
    messages_kept: int
    comparison: Comparison
    topic: TopicTally
    dead_letters: list[DeadLetter]


@dataclass
class DemoResult:
    """Everything the report shows; ``exit_code`` is 0 only when the cache equals the table (after any redrive)."""

    options: DemoOptions
    written: Counter[WriteKind]
    changes: dict[str, StreamChange]  # by sequence number: every change delivered at least once
    mapping: MappingReport
    handler: InvocationTotals
    momento_calls: Counter[str]  # the pipeline's calls (the subscriber's Subscribe is in `subscriptions`)
    injected_faults: Counter[str]
    subscriptions: int
    topic: TopicTally
    dead_letters: list[DeadLetter]
    comparison: Comparison
    compared_at: float
    log_path: Path
    elapsed_seconds: float = 0.0
    redrive: RedriveResult | None = None
    redrive_unavailable: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changes_written(self) -> int:
        return sum(self.written.values())

    @property
    def discarded(self) -> list[DiscardedBatch]:
        return self.mapping.discarded

    @property
    def discarded_changes(self) -> set[str]:
        """Changes in batches the mapping discarded (retries exhausted, or too old): the DLQ stands for them."""
        ranges = [(int(batch.first_sequence_number), int(batch.last_sequence_number)) for batch in self.discarded]
        return {number for number in self.changes if any(low <= int(number) <= high for low, high in ranges)}

    @property
    def redeliveries(self) -> int:
        """Records delivered again after their first delivery (retried or split batches)."""
        return self.mapping.records_delivered - len(self.changes)

    @property
    def outcomes(self) -> Counter[InvocationOutcome]:
        return Counter(invocation.outcome for invocation in self.mapping.invocation_log)

    @property
    def final_comparison(self) -> Comparison:
        return self.redrive.comparison if self.redrive is not None else self.comparison

    @property
    def dlq_keys(self) -> set[str]:
        return {key for letter in self.dead_letters for key in letter.keys}

    @property
    def dlq_sequence_numbers(self) -> set[str]:
        return {number for letter in self.dead_letters for number in letter.sequence_numbers}

    @property
    def all_delivered(self) -> bool:
        return self.mapping.caught_up and len(self.changes) == self.changes_written

    @property
    def lost_publishes(self) -> list[str]:
        """Changes never published that no DLQ message accounts for (after a redrive: any never published)."""
        if self.redrive is not None:
            return list(self.redrive.topic.never_published)
        return [number for number in self.topic.never_published if number not in self.dlq_sequence_numbers]

    @property
    def exit_code(self) -> int:
        ok = self.final_comparison.all_equal and self.all_delivered and not self.lost_publishes
        return 0 if ok else 1
