"""A rate limit shared by every scan segment: operations start at most ``rate`` per second, evenly spaced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``rate`` operations per second, spaced evenly, shared by every segment (FIFO).

    Calls start at least ``1/rate`` seconds apart, so no one-second window holds more than ``rate`` of them; after an
    idle spell the schedule restarts from now instead of letting a burst catch up.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of operations per second, got {rate}")
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._origin = 0.0
        self._count = 0
        self._lock: asyncio.Lock | None = None

    async def acquire(self) -> None:
        if self._lock is None:  # created on the running loop
            self._lock = asyncio.Lock()
        async with self._lock:  # one waiter at a time keeps the order and the spacing exact
            now = self.clock()
            slot = self._origin + self._count / self.rate  # computed from the origin: no drift from summed intervals
            if self._count == 0 or slot <= now:
                self._origin, self._count, slot = now, 0, now
            self._count += 1
            if slot > now:
                await self.sleep(slot - now)
