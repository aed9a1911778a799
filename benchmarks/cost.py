"""Cost per million changes: the Lambda function (from measured durations, at list prices) next to EventBridge Pipes.

Lambda arm64 bills GB-seconds of billed duration (rounded up to the millisecond) plus requests; one invocation
handles a whole batch. The Pipes integration of the Momento demo uses three pipes with batch size 1: after
filtering, each change is one request to the set-or-delete pipe and one to the publish pipe, and each of those
invokes an API destination once. Prices: us-east-1 list prices (check the live pricing pages before quoting).

Lambda gives a function CPU in proportion to its memory (one full vCPU at 1,769 MB). The handler is CPU-bound
at 64 requests in flight (network waits overlap), so a duration measured on a full core of this machine is also
converted to the duration the function would need with its CPU share: the CPU seconds divided by that share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LambdaCost", "LambdaPricing", "PipesPricing", "cpu_share_seconds", "lambda_cost"]


@dataclass(frozen=True)
class LambdaPricing:
    """AWS Lambda arm64 list prices (us-east-1)."""

    per_gb_second: float = 0.0000133334
    per_million_requests: float = 0.20
    full_vcpu_mb: int = 1769


@dataclass(frozen=True)
class PipesPricing:
    """EventBridge Pipes and API destinations list prices, and how many of each one change costs."""

    per_million_pipe_requests: float = 0.40
    per_million_api_invocations: float = 0.20
    pipe_requests_per_change: int = 2  # the set-or-delete pipe and the publish pipe (billed after filtering)
    api_invocations_per_change: int = 2  # API destinations cannot batch: one HTTP call per record and pipe

    @property
    def per_million_changes(self) -> float:
        return (
            self.pipe_requests_per_change * self.per_million_pipe_requests
            + self.api_invocations_per_change * self.per_million_api_invocations
        )

    def arithmetic(self) -> str:
        return (
            f"{self.pipe_requests_per_change} pipe requests x ${self.per_million_pipe_requests:.2f}/M + "
            f"{self.api_invocations_per_change} API destination invocations x "
            f"${self.per_million_api_invocations:.2f}/M = ${self.per_million_changes:.2f} per million changes"
        )


@dataclass(frozen=True)
class LambdaCost:
    """What a million changes cost on Lambda in batches of ``batch_size`` taking ``seconds_per_batch`` each."""

    batch_size: int
    memory_mb: int
    seconds_per_batch: float
    pricing: LambdaPricing

    @property
    def invocations(self) -> float:
        return 1_000_000 / self.batch_size

    @property
    def billed_ms(self) -> int:
        return max(1, math.ceil(self.seconds_per_batch * 1000))

    @property
    def gb_seconds(self) -> float:
        return self.invocations * self.billed_ms / 1000 * self.memory_mb / 1024

    @property
    def compute(self) -> float:
        return self.gb_seconds * self.pricing.per_gb_second

    @property
    def requests(self) -> float:
        return self.invocations / 1_000_000 * self.pricing.per_million_requests

    @property
    def total(self) -> float:
        return self.compute + self.requests

    def arithmetic(self) -> str:
        return (
            f"{self.invocations:,.0f} invocations x {self.billed_ms} ms x {self.memory_mb}/1024 GB "
            f"= {self.gb_seconds:,.2f} GB-s x ${self.pricing.per_gb_second}/GB-s = ${self.compute:.5f}; "
            f"requests {self.invocations:,.0f} x ${self.pricing.per_million_requests:.2f}/M = ${self.requests:.5f}; "
            f"total ${self.total:.5f}"
        )


def lambda_cost(
    batch_size: int, seconds_per_batch: float, memory_mb: int, pricing: LambdaPricing | None = None
) -> LambdaCost:
    return LambdaCost(batch_size, memory_mb, seconds_per_batch, pricing or LambdaPricing())


def cpu_share_seconds(
    wall_seconds: float, cpu_seconds: float, memory_mb: int, pricing: LambdaPricing | None = None
) -> float:
    """The duration on Lambda at ``memory_mb``: no shorter than measured, nor than the CPU time at its CPU share."""
    share = min(1.0, memory_mb / (pricing or LambdaPricing()).full_vcpu_mb)
    return max(wall_seconds, cpu_seconds / share)
