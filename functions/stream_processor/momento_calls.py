"""The Momento calls every writer of the cache makes, each retried with backoff while its deadline allows."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from stream_processor.momento_errors import CallFailure
from stream_processor.planner import SetItem
from stream_processor.retries import Backoff, Deadline, call_with_retries

__all__ = ["CacheCalls", "MomentoGateway"]


class MomentoGateway(Protocol):
    """The three Momento calls; each returns None on success or the classified failure."""

    cache_call_seconds: float
    publish_call_seconds: float

    async def set(self, key: str, value: bytes, ttl_ms: int) -> CallFailure | None: ...

    async def delete(self, key: str) -> CallFailure | None: ...

    async def publish(self, message: bytes) -> CallFailure | None: ...


class CacheCalls:
    """The Momento calls of one run, each retried with backoff while its deadline can afford another attempt.

    ``pace`` is awaited before every attempt (the backfill's rate limit: retries count against Momento's limits too).
    """

    def __init__(
        self,
        gateway: MomentoGateway,
        deadline: Callable[[], Deadline],
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.gateway = gateway
        self.deadline = deadline
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.pace = pace
        self.retries = 0

    async def write(self, key: str, write: SetItem | None) -> CallFailure | None:
        """Set the key (``write``) or delete it (None)."""
        gateway = self.gateway
        if write is None:
            return await self._call(lambda: gateway.delete(key), gateway.cache_call_seconds)
        return await self._call(lambda: gateway.set(key, write.value, write.ttl_ms), gateway.cache_call_seconds)

    async def publish(self, message: bytes) -> CallFailure | None:
        return await self._call(lambda: self.gateway.publish(message), self.gateway.publish_call_seconds)

    async def _call(self, operation: Callable[[], Awaitable[CallFailure | None]], worst_call: float):
        pace = self.pace
        if pace is not None:
            unpaced = operation

            async def operation() -> CallFailure | None:
                await pace()
                return await unpaced()

        return await call_with_retries(
            operation,
            self.deadline(),
            worst_call,
            backoff=self.backoff,
            rng=self.rng,
            on_retry=self._count,
            sleep=self.sleep,
        )

    def _count(self, _failure: CallFailure) -> None:
        self.retries += 1
