"""What a CPU time per change means on Lambda: changes per second per function (shard headroom) and cost, by memory.

Lambda gives a function CPU in proportion to its memory, one full vCPU at 1,769 MB (a single-threaded Python
process gains nothing above that). The handler is CPU-bound at its concurrency (network waits overlap with work),
so one function sustains ``vCPU share / CPU seconds per change`` changes per second, and is billed that long:
``CPU seconds / share`` of duration per change, at its memory, plus one request per batch. The GB-seconds per
change are then the same at every memory up to 1,769 MB: more memory buys headroom, not a lower cost.

A DynamoDB stream shard carries up to about 1,000 writes per second; one function per shard (ParallelizationFactor
1) must sustain that to keep up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.cost import LambdaCost, LambdaPricing, lambda_cost

__all__ = ["FULL_RATE_SHARD", "Capacity", "capacity", "memory_to_keep_up"]

FULL_RATE_SHARD = 1_000  # changes per second on one stream shard at full write rate


@dataclass(frozen=True)
class Capacity:
    """One CPU time per change at one memory size and batch size."""

    cpu_seconds_per_change: float
    memory_mb: int
    batch_size: int
    pricing: LambdaPricing

    @property
    def vcpu_share(self) -> float:
        return min(1.0, self.memory_mb / self.pricing.full_vcpu_mb)

    @property
    def changes_per_second(self) -> float:
        """What one function sustains, CPU-bound at its share of a vCPU."""
        return self.vcpu_share / self.cpu_seconds_per_change

    @property
    def headroom(self) -> float:
        """Changes per second against a full-rate shard (above 1 keeps up with ParallelizationFactor 1)."""
        return self.changes_per_second / FULL_RATE_SHARD

    @property
    def parallelization_to_keep_up(self) -> int | None:
        """The ParallelizationFactor that keeps up with a full-rate shard at this memory (None: more than 10)."""
        factor = math.ceil(FULL_RATE_SHARD / self.changes_per_second)
        return factor if factor <= 10 else None

    @property
    def cost(self) -> LambdaCost:
        """The cost of a million changes: billed duration = CPU time at this share, in batches of ``batch_size``."""
        seconds_per_batch = self.cpu_seconds_per_change * self.batch_size / self.vcpu_share
        return lambda_cost(self.batch_size, seconds_per_batch, self.memory_mb, self.pricing)


def capacity(
    cpu_seconds_per_change: float, memory_mb: int, batch_size: int, pricing: LambdaPricing | None = None
) -> Capacity:
    return Capacity(cpu_seconds_per_change, memory_mb, batch_size, pricing or LambdaPricing())


def memory_to_keep_up(cpu_seconds_per_change: float, pricing: LambdaPricing | None = None) -> int | None:
    """The smallest memory (MB) at which one function sustains a full-rate shard; None when a whole vCPU is not
    enough (then only a ParallelizationFactor above 1 keeps up)."""
    pricing = pricing or LambdaPricing()
    needed = math.ceil(FULL_RATE_SHARD * cpu_seconds_per_change * pricing.full_vcpu_mb)
    return max(128, needed) if needed <= pricing.full_vcpu_mb else None
