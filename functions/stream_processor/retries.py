"""Retry timing: exponential backoff with full jitter, for as long as the invocation can afford another attempt.

Not a fixed number of attempts: a call is retried while the time left (Lambda's remaining time) still covers the
backoff delay, one worst-case call and the reply. Every retry happens here: the cache client runs without the SDK's
retry strategy (``momento_clients.without_sdk_retries``), which would retry at once, without backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stream_processor.momento_errors import CallFailure, FailureKind

__all__ = ["Backoff", "Deadline", "call_with_retries"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits uniformly in [0, min(cap, base * 2**n)] seconds."""

    base_seconds: float = 0.05
    cap_seconds: float = 1.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * (2 ** min(attempt, 30))))


class Deadline:
    """The invocation's time budget, from ``context.get_remaining_time_in_millis`` (or a fixed budget)."""

    def __init__(self, remaining_ms: Callable[[], int], reply_margin_seconds: float = 0.5) -> None:
        self._remaining_ms = remaining_ms
        self.reply_margin_seconds = reply_margin_seconds

    @classmethod
    def from_context(cls, context: object | None, fallback_seconds: float = 60.0) -> Deadline:
        """A deadline from a Lambda context; without one (scripts, tests) a fixed budget from now."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            return cls(remaining)
        end = time.monotonic() + fallback_seconds
        return cls(lambda: int((end - time.monotonic()) * 1000))

    def remaining_seconds(self) -> float:
        return self._remaining_ms() / 1000.0

    def can_afford(self, delay_seconds: float, worst_call_seconds: float) -> bool:
        """Whether waiting ``delay_seconds`` and one more worst-case call still leaves room to reply."""
        return self.remaining_seconds() - delay_seconds - worst_call_seconds - self.reply_margin_seconds > 0


async def call_with_retries(
    operation: Callable[[], Awaitable[CallFailure | None]],
    deadline: Deadline,
    worst_call_seconds: float,
    *,
    backoff: Backoff,
    rng: random.Random,
    on_retry: Callable[[CallFailure], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> CallFailure | None:
    """Run a Momento call until it succeeds, fails for good, or the deadline cannot afford another attempt.

    Only ``RETRYABLE`` failures are retried; the last failure is returned (None on success). ``on_retry`` sees each
    failure that is about to be retried (for counting); ``sleep`` is injectable so tests need no wall-clock time.
    """
    attempt = 0
    while True:
        failure = await operation()
        if failure is None or failure.kind is not FailureKind.RETRYABLE:
            return failure
        delay = backoff.delay(attempt, rng)
        if not deadline.can_afford(delay, worst_call_seconds):
            return failure
        if on_retry is not None:
            on_retry(failure)
        attempt += 1
        await sleep(delay)
