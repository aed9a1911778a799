"""Small test doubles shared by the test modules: a clock that moves only when slept on, a stdout follower."""

from __future__ import annotations

import asyncio
import sys


class FakeClock:
    """Seconds that move only when someone sleeps on them (``sleep`` is an async drop-in for asyncio.sleep)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class CurrentStdout:
    """Writes to whatever sys.stdout is now (pytest swaps it between setup and call, and per test)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()
