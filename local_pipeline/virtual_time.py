"""Lambda time on a virtual clock for local runs: backoffs cost no wall-clock time, and a seed replays a run exactly.

The handler backs off between retries (``retries.call_with_retries``, full jitter from ``execute_plan``'s ``rng``)
for as long as the invocation's remaining time allows. In a local run those waits would make a fault run slow and,
because the jitter and the clock are shared by keys that run concurrently, make its outcome depend on the order in
which the server's answers arrive. So the local pipeline runs the handler on virtual time:

- **The Lambda clock is virtual.** It starts at the real time and moves only when the handler backs off, by the
  delay. Everything else takes no virtual time: Momento calls to the local server take about a millisecond (an
  injected DEADLINE_EXCEEDED answers at once), and the handler's own CPU time depends on the machine, which is what
  must not decide the outcome. So even a 1 s function timeout gives the same run on any machine; and as the handler
  only backs off while the invocation can afford it, an invocation never outlives its timeout.
- **Each cache key has its own lane.** The handler runs keys concurrently, so on Lambda their backoffs overlap: a
  key's remaining time depends on its own waits, and an invocation lasts as long as its slowest key. Each key's
  waits therefore move only that key's clock, and when the invocation returns the mapping's clock moves on by the
  longest lane. (A key that waits for a free ``MAX_IN_FLIGHT`` slot starts its lane at zero: a batch with more keys
  than slots is judged a little optimistically.)
- **Jitter comes from the seed and the key.** Each lane draws its backoff delays from its own generator seeded with
  the run's seed and the cache key, so the delays a key gets never depend on what other keys did first.

With the local server deciding its injected faults from the seed and each call's identity (not from arrival order),
the same seed then gives the same calls, retries, batch outcomes and report.

The handler is not changed: ``installed()`` wraps the seam the test suite uses for the same purpose
(``app.execute_plan``, whose ``rng`` and ``sleep`` it sets and whose gateway it wraps) for as long as it is active.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from local_pipeline.event_source_mapping import Handler
from stream_processor.momento_errors import CallFailure

__all__ = ["VirtualLambdaTime"]


class _LaneJitter(random.Random):
    """A ``random.Random`` whose draws come from the current lane's own generator (seeded with the run and key)."""

    def __init__(self, time: VirtualLambdaTime) -> None:
        self._time = time
        super().__init__(0)

    def random(self) -> float:
        return self._time._lane_generator().random()


class VirtualLambdaTime:
    """The virtual Lambda clock of one local run (call it for the time); see the module docstring.

    Example::

        time = VirtualLambdaTime(start=time.time(), seed=7)
        mapping = StreamEventSourceMapping(stream_arn, time.wrap(handler), settings, clock=time)
        with time.installed():
            mapping.run_until_caught_up()
    """

    def __init__(self, start: float, seed: int) -> None:
        self._now = start
        self._seed = seed
        self._lane: ContextVar[str | None] = ContextVar("virtual_time_lane", default=None)
        self._elapsed: dict[str, float] = {}  # per lane, in the current invocation
        self._generators: dict[str, random.Random] = {}  # per lane, for the whole run
        self.jitter: random.Random = _LaneJitter(self)

    def __call__(self) -> float:
        """The time now: the invocation's start plus the current lane's waits (outside a lane, the start)."""
        lane = self._lane.get()
        return self._now + (self._elapsed.get(lane, 0.0) if lane is not None else 0.0)

    async def sleep(self, seconds: float) -> None:
        """A backoff: the current lane's clock moves on at once; other keys still get their turn."""
        self._advance(seconds)
        await asyncio.sleep(0)

    def wrap(self, handler: Handler) -> Handler:
        """The handler, after which the clock moves on by the invocation's longest lane."""

        def invoke(event: dict[str, Any], context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                self._now += max(self._elapsed.values(), default=0.0)
                self._elapsed.clear()

        return invoke

    @contextlib.contextmanager
    def installed(self) -> Iterator[VirtualLambdaTime]:
        """Run the stream processor's executions on this clock while the block runs."""
        from stream_processor import app

        execute_plan = app.execute_plan

        def execute_on_virtual_time(plan: Any, gateway: Any, deadline: Any, *, max_in_flight: int, **options: Any):
            options.update(rng=self.jitter, sleep=self.sleep)
            return execute_plan(plan, _LaneGateway(gateway, self), deadline, max_in_flight=max_in_flight, **options)

        app.execute_plan = execute_on_virtual_time
        try:
            yield self
        finally:
            app.execute_plan = execute_plan

    # lanes

    def enter_lane(self, key: str | None) -> None:
        """From here on, the current task's waits are ``key``'s (the gateway calls this before each call)."""
        self._lane.set(key)

    def _advance(self, seconds: float) -> None:
        lane = self._lane.get()
        if lane is None:
            self._now += seconds
        else:
            self._elapsed[lane] = self._elapsed.get(lane, 0.0) + seconds

    def _lane_generator(self) -> random.Random:
        lane = self._lane.get() or ""
        generator = self._generators.get(lane)
        if generator is None:
            generator = self._generators[lane] = random.Random(f"{self._seed}:{lane}")
        return generator


class _LaneGateway:
    """The handler's Momento gateway, each call entering its cache key's lane first."""

    def __init__(self, gateway: Any, time: VirtualLambdaTime) -> None:
        self._gateway = gateway
        self._time = time
        self.cache_call_seconds: float = gateway.cache_call_seconds
        self.publish_call_seconds: float = gateway.publish_call_seconds

    async def set(self, key: str, value: bytes, ttl_ms: int) -> CallFailure | None:
        self._time.enter_lane(key)
        return await self._gateway.set(key, value, ttl_ms)

    async def delete(self, key: str) -> CallFailure | None:
        self._time.enter_lane(key)
        return await self._gateway.delete(key)

    async def publish(self, message: bytes) -> CallFailure | None:
        self._time.enter_lane(_message_key(message))
        return await self._gateway.publish(message)


def _message_key(message: bytes) -> str | None:
    """The cache key a change message is about (every change message carries it as "key")."""
    try:
        key = json.loads(message).get("key")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None
