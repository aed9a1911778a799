"""The raw-SDK baseline: the handler's own calls issued straight through the Momento SDK's async clients.

The calls (cache keys, values, TTLs, change messages) come from the handler's plan, taken before timing, so the
baseline does only what the SDK does: per key one ``set``, then that key's change messages, ``workers`` keys at a
time (the handler's order and concurrency). Variants issue only the sets, only the publishes, or the sets followed
by packed topic messages, which emulates the packed mode with the SDK alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from momento import CacheClientAsync, TopicClientAsync
from momento.responses import CacheSet, TopicPublish

from stream_processor.topic_packing import TopicPack, TopicPacker, pack_change_messages

__all__ = [
    "KeyCalls",
    "RawClients",
    "key_calls",
    "publishes_only",
    "set_and_publish",
    "sets_and_packs",
    "sets_only",
    "sets_then_packs",
]


@dataclass(frozen=True)
class KeyCalls:
    """One key of a batch as the SDK sees it: its cache set and its change messages in stream order."""

    key: str
    value: bytes
    ttl: timedelta
    messages: tuple[bytes, ...]


@dataclass(frozen=True)
class RawClients:
    """The SDK clients a baseline run uses (all bound to the event loop that runs it)."""

    cache: CacheClientAsync
    topics: TopicClientAsync
    cache_name: str
    topic_name: str

    async def set(self, call: KeyCalls) -> bool:
        return isinstance(await self.cache.set(self.cache_name, call.key, call.value, call.ttl), CacheSet.Success)

    async def publish(self, message: str) -> bool:
        return isinstance(await self.topics.publish(self.cache_name, self.topic_name, message), TopicPublish.Success)

    async def close(self) -> None:
        await self.cache.__aexit__(None, None, None)  # CacheClientAsync has no close() in momento 1.29
        await self.topics.close()


def key_calls(event: dict[str, Any], rules: Any) -> list[KeyCalls]:
    """The handler's calls for an event of INSERTs: per key its set and its messages (from the real planner)."""
    from stream_processor.planner import plan_batch, read_batch

    plan = plan_batch(read_batch(event["Records"], rules), rules, time.time())
    calls = []
    for key_plan in plan.key_plans:
        write = key_plan.write
        assert write is not None, "the benchmark sends INSERTs only"
        messages = tuple(change.message for change in key_plan.changes if change.message)
        calls.append(KeyCalls(key_plan.cache_key, write.value, timedelta(milliseconds=write.ttl_ms), messages))
    return calls


async def _pool(items: Sequence[Any], workers: int, work: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``work`` on every item with ``workers`` workers; the failures they count, summed."""
    pending = iter(items)
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for item in pending:
            failed += await work(item)

    await asyncio.gather(*(worker() for _ in range(max(1, min(workers, len(items))))))
    return failed


async def set_and_publish(calls: Sequence[KeyCalls], clients: RawClients, workers: int) -> int:
    """Per key, the set and then each change message (one publish per change); returns the failed calls."""

    async def one_key(call: KeyCalls) -> int:
        if not await clients.set(call):
            return 1 + len(call.messages)
        failed = 0
        for message in call.messages:
            failed += not await clients.publish(message.decode("utf-8"))
        return failed

    return await _pool(calls, workers, one_key)


async def sets_only(calls: Sequence[KeyCalls], clients: RawClients, workers: int) -> int:
    async def one_set(call: KeyCalls) -> int:
        return int(not await clients.set(call))

    return await _pool(calls, workers, one_set)


async def publishes_only(calls: Sequence[KeyCalls], clients: RawClients, workers: int) -> int:
    messages = [message.decode("utf-8") for call in calls for message in call.messages]

    async def one_publish(message: str) -> int:
        return int(not await clients.publish(message))

    return await _pool(messages, workers, one_publish)


async def sets_and_packs(calls: Sequence[KeyCalls], clients: RawClients, workers: int, max_bytes: int) -> int:
    """The packed mode with the SDK alone: per key the set; once it lands, its messages join the open pack.

    A full pack is published at once, after the packs it follows; at most ``workers`` calls are in flight.
    """
    limit = asyncio.Semaphore(workers)
    packer = TopicPacker(max_bytes)
    published: list[asyncio.Future[bool]] = []
    failed = 0

    async def publish(pack: TopicPack, after: list[asyncio.Future[bool]]) -> bool:
        if not all([await earlier for earlier in after]):
            return False  # an earlier pack of one of its keys failed: this one must not overtake it
        async with limit:
            return await clients.publish(pack.text)

    def start(pack: TopicPack | None) -> None:
        if pack is not None:
            after = [published[position] for position in pack.follows]
            published.append(asyncio.ensure_future(publish(pack, after)))

    async def one_key(call: KeyCalls) -> int:
        async with limit:
            landed = await clients.set(call)
        if not landed:
            return 1
        for message in call.messages:
            start(packer.add(call.key, message))
        return 0

    failed += await _pool(calls, workers, one_key)
    start(packer.flush())
    failed += sum(not ok for ok in await asyncio.gather(*published))
    return failed


async def sets_then_packs(calls: Sequence[KeyCalls], clients: RawClients, workers: int, max_bytes: int) -> int:
    """The handler's packed-mode calls with nothing else: every set (``workers`` at a time), then the change messages
    of the keys whose set landed packed into topic messages of at most ``max_bytes``, ``workers`` packs in flight,
    each after the earlier packs holding one of its keys."""
    landed = [call for call, ok in zip(calls, await _set_all(calls, clients, workers), strict=True) if ok]
    packs = pack_change_messages(((call.key, message) for call in landed for message in call.messages), max_bytes)
    limit = asyncio.Semaphore(workers)
    published: list[asyncio.Future[bool]] = [asyncio.get_running_loop().create_future() for _ in packs]

    async def publish(position: int) -> None:
        pack = packs[position]
        ok = all([await published[earlier] for earlier in pack.follows])
        if ok:
            async with limit:
                ok = await clients.publish(pack.text)
        published[position].set_result(ok)

    await asyncio.gather(*(publish(position) for position in range(len(packs))))
    return len(calls) - len(landed) + sum(not future.result() for future in published)


async def _set_all(calls: Sequence[KeyCalls], clients: RawClients, workers: int) -> list[bool]:
    landed = [False] * len(calls)

    async def one_set(index: int) -> int:
        landed[index] = await clients.set(calls[index])
        return 0

    await _pool(range(len(calls)), workers, one_set)
    return landed
