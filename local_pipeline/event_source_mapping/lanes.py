"""A shard as the mapping reads it: its lanes (one per ParallelizationFactor slot), their batches, its checkpoint.

Records are routed to a lane by a stable hash of their item key (``dynamodb.Keys``), so every record of one item
goes to the same lane, in stream order. Lambda documents the guarantee (order per item key), not its hash: this one
is SHA-256 of the keys' canonical JSON, the same on every run and machine.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Batch", "Lane", "Shard", "ShardProgress", "lane_of", "sequence_number"]

Record = dict[str, Any]  # a stream record in Lambda's event shape


def sequence_number(record: Mapping[str, Any]) -> str:
    return record["dynamodb"]["SequenceNumber"]


def lane_of(record: Mapping[str, Any], parallelization_factor: int) -> int:
    """The lane (0 to factor - 1) that carries this record: the same for every record of one item."""
    if parallelization_factor == 1:
        return 0
    keys = json.dumps(record["dynamodb"]["Keys"], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(keys.encode()).digest()[:8], "big") % parallelization_factor


@dataclass
class Batch:
    """Records in flight together, with the counts Lambda keeps for them."""

    records: list[Record]
    retries_used: int = 0
    invoke_count: int = 0
    last_request_id: str | None = None
    last_function_error: str | None = None

    def part(self, records: list[Record]) -> Batch:
        """A piece of this batch (a half, a remainder): it inherits the retry and invocation counts."""
        return replace(self, records=records)


@dataclass
class Lane:
    """One ordered sub-stream of a shard: records waiting to be batched, and batches waiting to be (re)delivered."""

    index: int
    buffer: deque[Record] = field(default_factory=deque)
    pending: deque[Batch] = field(default_factory=deque)

    @property
    def has_work(self) -> bool:
        return bool(self.pending or self.buffer)

    def next_batch(self, batch_size: int) -> Batch | None:
        """The batch to deliver next: a retried or split one first, else up to ``batch_size`` new records."""
        if self.pending:
            return self.pending.popleft()
        count = min(batch_size, len(self.buffer))
        if count == 0:
            return None
        return Batch([self.buffer.popleft() for _ in range(count)])


class ShardProgress:
    """The shard's checkpoint: the last record before the first one not yet processed (lanes finish out of order)."""

    def __init__(self) -> None:
        self.checkpoint: str | None = None
        self._open: deque[str] = deque()  # read and not yet checkpointed, in stream order
        self._done: set[str] = set()

    def read(self, number: str) -> None:
        self._open.append(number)

    def finish(self, numbers: Iterable[str]) -> None:
        """Records delivered successfully, discarded or filtered out."""
        self._done.update(numbers)
        while self._open and self._open[0] in self._done:
            self.checkpoint = self._open.popleft()
            self._done.discard(self.checkpoint)


@dataclass
class Shard:
    shard_id: str
    parent_shard_id: str | None
    start: str  # iterator type used when the shard has not been read yet
    lanes: list[Lane]
    iterator: str | None = None
    ended: bool = False  # closed and read to its end: GetRecords returned no NextShardIterator
    last_read: str | None = None
    progress: ShardProgress = field(default_factory=ShardProgress)

    @classmethod
    def new(cls, shard_id: str, parent_shard_id: str | None, start: str, parallelization_factor: int) -> Shard:
        return cls(shard_id, parent_shard_id, start, [Lane(index) for index in range(parallelization_factor)])

    @property
    def checkpoint(self) -> str | None:
        return self.progress.checkpoint

    @property
    def buffered(self) -> int:
        return sum(len(lane.buffer) for lane in self.lanes)

    @property
    def finished(self) -> bool:
        return self.ended and not any(lane.has_work for lane in self.lanes)

    def wants_records(self, batch_size: int) -> bool:
        """Whether to read on: some lane lacks a full batch, within a look-ahead of one full batch per lane."""
        if self.ended or self.buffered >= batch_size * len(self.lanes):
            return False
        return any(len(lane.buffer) < batch_size for lane in self.lanes)

    def add(self, record: Record, *, delivered: bool) -> None:
        """A record read from the stream: queued on its lane, or (filtered out) checkpointed at once."""
        number = sequence_number(record)
        self.progress.read(number)
        if delivered:
            self.lanes[lane_of(record, len(self.lanes))].buffer.append(record)
        else:
            self.progress.finish([number])
