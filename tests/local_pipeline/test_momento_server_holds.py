"""Held writes in the local Momento server, driven through the real `momento` SDK over gRPC on loopback.

Waiting for a hold and releasing it block, so the scenarios do both in a worker thread (`asyncio.to_thread`): the
SDK sends its calls from the event loop, which must keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from momento import CacheClientAsync, Configurations, TopicClientAsync, TopicConfigurations
from momento.responses import CacheDelete, CacheSet, TopicPublish

from local_pipeline.momento_server import LocalMomentoServer, WriteHold

CACHE = "test-cache"
TOPIC = "test-topic"
WAIT_SECONDS = 5.0
# Calls stay held while the test looks around: a deadline far longer than any hold here.
PATIENT_CLIENT = Configurations.Lambda.latest().with_client_timeout(timedelta(seconds=60))
T = TypeVar("T")


def run(server: LocalMomentoServer, scenario: Callable[[CacheClientAsync, TopicClientAsync], Awaitable[T]]) -> T:
    async def main() -> T:
        credentials = server.credential_provider()
        topic_configuration = TopicConfigurations.Default.latest().with_client_timeout(timedelta(seconds=60))
        async with (
            CacheClientAsync(PATIENT_CLIENT, credentials, timedelta(minutes=5)) as cache,
            TopicClientAsync(topic_configuration, credentials) as topics,
        ):
            return await scenario(cache, topics)

    return asyncio.run(main())


async def held(hold: WriteHold, count: int | None = None) -> bool:
    return await asyncio.to_thread(hold.wait_until_held, WAIT_SECONDS, count)


async def release(hold: WriteHold) -> None:
    await asyncio.to_thread(hold.release)


def test_a_held_set_is_applied_only_when_released_and_other_values_pass(momento_server: LocalMomentoServer) -> None:
    hold = momento_server.hold_writes(key="Seattle", value='{"t": 1}')

    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> dict[str, object]:
        old_write = asyncio.create_task(cache.set(CACHE, "Seattle", '{"t": 1}'))
        seen: dict[str, object] = {"held": await held(hold)}
        seen["while held"] = momento_server.cache_items(CACHE)
        seen["newer write"] = await cache.set(CACHE, "Seattle", '{"t": 2}')  # same key, another value
        seen["before release"] = momento_server.cache_items(CACHE)
        seen["old write answered early"] = old_write.done()
        await release(hold)
        seen["after release"] = momento_server.cache_items(CACHE)
        seen["old write"] = await old_write
        return seen

    seen = run(momento_server, scenario)

    assert seen["held"] is True
    assert seen["while held"] == {}
    assert isinstance(seen["newer write"], CacheSet.Success)
    assert seen["before release"] == {"Seattle": b'{"t": 2}'}
    assert seen["old write answered early"] is False
    assert seen["after release"] == {"Seattle": b'{"t": 1}'}  # the late write landed last: the race, forced
    assert isinstance(seen["old write"], CacheSet.Success)
    assert hold.held_count == 1
    assert momento_server.calls["Set"] == 2


@pytest.mark.parametrize(("first", "last"), [("v1", "v2"), ("v2", "v1")])
def test_writes_apply_in_the_order_their_holds_are_released(
    momento_server: LocalMomentoServer, first: str, last: str
) -> None:
    holds = {value: momento_server.hold_writes(key="k", value=value, method="Set") for value in ("v1", "v2")}

    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[object]:
        writes = [asyncio.create_task(cache.set(CACHE, "k", value)) for value in ("v1", "v2")]
        assert all([await held(holds["v1"]), await held(holds["v2"])])
        await release(holds[first])
        await release(holds[last])
        return list(await asyncio.gather(*writes))

    responses = run(momento_server, scenario)

    assert all(isinstance(response, CacheSet.Success) for response in responses)
    assert momento_server.cache_items(CACHE) == {"k": last.encode()}


def test_a_hold_catches_times_calls_then_lets_the_rest_through(momento_server: LocalMomentoServer) -> None:
    hold = momento_server.hold_writes(key="k", times=2)

    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> tuple[bool, dict[str, bytes], list[object]]:
        writes = [asyncio.create_task(cache.set(CACHE, "k", value)) for value in ("a", "b")]
        caught = await held(hold, count=2)
        third = await cache.set(CACHE, "k", "c")  # past the cap: straight through
        while_held = momento_server.cache_items(CACHE)
        await release(hold)
        return caught, while_held, [third, *await asyncio.gather(*writes)]

    caught, while_held, responses = run(momento_server, scenario)

    assert caught
    assert while_held == {"k": b"c"}
    assert all(isinstance(response, CacheSet.Success) for response in responses)
    assert hold.held_count == 2
    assert hold.caught_calls == [("Set", "k"), ("Set", "k")]
    assert momento_server.cache_items(CACHE)["k"] in {b"a", b"b"}  # released in arrival order, which gather leaves open


def test_deletes_and_publishes_are_held_by_method_and_key(momento_server: LocalMomentoServer) -> None:
    delete_hold = momento_server.hold_writes(key="Seattle", method="Delete")
    publish_hold = momento_server.hold_writes(key="Seattle", method="Publish")
    seattle, tokyo = json.dumps({"key": "Seattle"}), json.dumps({"key": "Tokyo"})

    async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> dict[str, object]:
        await cache.set(CACHE, "Seattle", "v")  # a Set: not the held method
        delete = asyncio.create_task(cache.delete(CACHE, "Seattle"))
        publish = asyncio.create_task(topics.publish(CACHE, TOPIC, seattle))
        seen: dict[str, object] = {"held": [await held(delete_hold), await held(publish_hold)]}
        seen["other key"] = await topics.publish(CACHE, TOPIC, tokyo)
        seen["items while held"] = momento_server.cache_items(CACHE)
        seen["messages while held"] = momento_server.published(CACHE, TOPIC)
        await release(delete_hold)
        await release(publish_hold)
        seen["responses"] = [await delete, await publish]
        return seen

    seen = run(momento_server, scenario)

    assert seen["held"] == [True, True]
    assert isinstance(seen["other key"], TopicPublish.Success)
    assert seen["items while held"] == {"Seattle": b"v"}
    assert seen["messages while held"] == [tokyo.encode()]
    assert momento_server.cache_items(CACHE) == {}
    assert momento_server.published(CACHE, TOPIC) == [tokyo.encode(), seattle.encode()]
    delete_response, publish_response = seen["responses"]  # type: ignore[misc]
    assert isinstance(delete_response, CacheDelete.Success)
    assert isinstance(publish_response, TopicPublish.Success)


def test_a_hold_with_a_value_never_catches_a_delete(momento_server: LocalMomentoServer) -> None:
    hold = momento_server.hold_writes(key="k", value="v")

    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> object:
        return await cache.delete(CACHE, "k")

    assert isinstance(run(momento_server, scenario), CacheDelete.Success)
    assert hold.held_count == 0


def test_waiting_for_a_call_that_never_comes_times_out(momento_server: LocalMomentoServer) -> None:
    hold = momento_server.hold_writes(key="never-written")

    assert hold.wait_until_held(timeout=0.2) is False
    assert hold.held_count == 0


def test_leaving_the_with_block_releases_even_when_the_test_fails(momento_server: LocalMomentoServer) -> None:
    async def failing_check() -> None:
        with momento_server.hold_writes(key="k") as hold:
            assert await held(hold)
            raise RuntimeError("a failing check")

    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> object:
        write = asyncio.create_task(cache.set(CACHE, "k", "v"))
        with pytest.raises(RuntimeError, match="a failing check"):
            await failing_check()
        return await write

    assert isinstance(run(momento_server, scenario), CacheSet.Success)
    assert momento_server.cache_items(CACHE) == {"k": b"v"}


def test_reset_releases_held_writes_before_forgetting_the_data(momento_server: LocalMomentoServer) -> None:
    hold = momento_server.hold_writes(key="k")

    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[object]:
        write = asyncio.create_task(cache.set(CACHE, "k", "before reset"))
        assert await held(hold)
        await asyncio.to_thread(momento_server.reset)
        momento_server.create_cache(CACHE)
        after = await cache.set(CACHE, "k", "after reset")  # the released hold no longer catches
        return [await write, after]

    responses = run(momento_server, scenario)

    assert all(isinstance(response, CacheSet.Success) for response in responses)
    assert hold.released
    assert momento_server.cache_items(CACHE) == {"k": b"after reset"}  # the held write did not leak past the reset


def test_stop_releases_held_writes() -> None:
    with LocalMomentoServer(caches=[CACHE]) as server:
        hold = server.hold_writes(key="k")

        async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> None:
            write = asyncio.create_task(cache.set(CACHE, "k", "v"))
            assert await held(hold)
            await asyncio.to_thread(server.stop)
            await write  # answered (or cut off by the stop), never left hanging

        run(server, scenario)

    assert hold.released
    assert server.cache_items(CACHE) == {"k": b"v"}  # applied on release, before the server stopped


def test_hold_settings_are_checked(momento_server: LocalMomentoServer) -> None:
    with pytest.raises(ValueError, match="method"):
        momento_server.hold_writes(key="k", method="Get")
    with pytest.raises(ValueError, match="times"):
        momento_server.hold_writes(key="k", times=0)
