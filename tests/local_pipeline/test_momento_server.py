"""The local Momento server, driven through the real `momento` SDK over gRPC on loopback.

Every scenario runs on ONE event loop (`asyncio.run`) with clients created inside it: the SDK's async clients
break when reused across loops. Subscriptions are read with our own timeout, well inside the subscription's
deadline: once that deadline has passed, the SDK's iterator spins without yielding to the event loop, and no
timeout can interrupt it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Protocol, TypeVar

import grpc
import pytest
from momento import CacheClientAsync, Configurations, CredentialProvider, TopicClientAsync, TopicConfigurations
from momento.config import Configuration
from momento.errors import MomentoErrorCode
from momento.responses import (
    CacheDelete,
    CacheGet,
    CacheSet,
    CacheSetIfNotExists,
    CreateCache,
    DeleteCache,
    ListCaches,
    TopicPublish,
    TopicSubscribe,
    TopicSubscriptionItem,
)

from local_pipeline.momento_server import (
    ERR_ITEM_SIZE,
    ERR_OPERATIONS_RATE,
    ERR_THROUGHPUT_RATE,
    FaultRule,
    LocalMomentoServer,
    fault_rate,
    start_server_process,
)
from local_pipeline.momento_server.faults import FaultBook

CACHE = "test-cache"
TOPIC = "test-topic"
READ_TIMEOUT_SECONDS = 5.0
# TopicConfigurations.Default's 5 s deadline also ends subscriptions; a longer one keeps every read timeout inside it.
TOPIC_CONFIGURATION = TopicConfigurations.Default.latest().with_client_timeout(timedelta(seconds=60))
T = TypeVar("T")


class Serving(Protocol):
    """A local server in this process or in a child process."""

    def credential_provider(self) -> CredentialProvider: ...


@asynccontextmanager
async def sdk_clients(
    server: Serving, configuration: Configuration | None = None
) -> AsyncIterator[tuple[CacheClientAsync, TopicClientAsync]]:
    creds = server.credential_provider()
    async with (
        CacheClientAsync(configuration or Configurations.Lambda.latest(), creds, timedelta(minutes=5)) as cache,
        TopicClientAsync(TOPIC_CONFIGURATION, creds) as topics,
    ):
        yield cache, topics


def run_with_clients(
    server: Serving,
    scenario: Callable[[CacheClientAsync, TopicClientAsync], Awaitable[T]],
    configuration: Configuration | None = None,
) -> T:
    async def main() -> T:
        async with sdk_clients(server, configuration) as (cache, topics):
            return await scenario(cache, topics)

    return asyncio.run(main())


async def subscribe(topics: TopicClientAsync, cache: str = CACHE) -> TopicSubscribe.SubscriptionAsync:
    subscription = await asyncio.wait_for(topics.subscribe(cache, TOPIC), READ_TIMEOUT_SECONDS)
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription
    return subscription


async def next_item(subscription: TopicSubscribe.SubscriptionAsync) -> object:
    return await asyncio.wait_for(anext(subscription), READ_TIMEOUT_SECONDS)


def error_trailer(error: CacheSet.Error | CacheGet.Error | CacheDelete.Error | TopicPublish.Error) -> str | None:
    """How client code reads Momento's `err` trailer from an SDK error response."""
    metadata = error.inner_exception.transport_details.grpc.metadata
    return metadata.get("err") if metadata is not None else None


# --- data calls -------------------------------------------------------------------------------------------------


def test_set_get_delete_round_trip(momento_server: LocalMomentoServer) -> None:
    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[object]:
        return [
            await cache.set(CACHE, "user#1", '{"name": "Ada"}'),
            await cache.get(CACHE, "user#1"),
            await cache.delete(CACHE, "user#1"),
            await cache.get(CACHE, "user#1"),
            await cache.set(CACHE, b"\x00binary", b"\xff\xfe"),
        ]

    stored, hit, deleted, miss, binary = run_with_clients(momento_server, scenario)

    assert isinstance(stored, CacheSet.Success)
    assert isinstance(hit, CacheGet.Hit)
    assert hit.value_string == '{"name": "Ada"}'
    assert isinstance(deleted, CacheDelete.Success)
    assert isinstance(miss, CacheGet.Miss)
    assert isinstance(binary, CacheSet.Success)
    assert momento_server.cache_items(CACHE) == {"\x00binary": b"\xff\xfe"}
    assert momento_server.calls["Set"] == 2
    assert momento_server.calls["Get"] == 2
    assert momento_server.calls["Delete"] == 1


def test_set_if_not_exists_keeps_the_first_value(momento_server: LocalMomentoServer) -> None:
    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[object]:
        return [await cache.set_if_not_exists(CACHE, "k", "first"), await cache.set_if_not_exists(CACHE, "k", "second")]

    first, second = run_with_clients(momento_server, scenario)

    assert isinstance(first, CacheSetIfNotExists.Stored)
    assert isinstance(second, CacheSetIfNotExists.NotStored)
    assert momento_server.cache_items(CACHE) == {"k": b"first"}


def test_ttl_is_honoured_and_expired_items_read_as_misses(momento_server: LocalMomentoServer) -> None:
    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> tuple[object, object]:
        await cache.set(CACHE, "short", "v", ttl=timedelta(milliseconds=100))
        await cache.set(CACHE, "long", "v", ttl=timedelta(seconds=60))
        await asyncio.sleep(0.3)  # the short TTL started before set() returned, so it has surely run out
        return await cache.get(CACHE, "short"), await cache.get(CACHE, "long")

    short, long = run_with_clients(momento_server, scenario)

    assert isinstance(short, CacheGet.Miss)
    assert isinstance(long, CacheGet.Hit)
    assert momento_server.cache_items(CACHE) == {"long": b"v"}
    assert momento_server.ttl_remaining_seconds(CACHE, "short") is None
    remaining = momento_server.ttl_remaining_seconds(CACHE, "long")
    assert remaining is not None
    assert 0 < remaining <= 60


def test_client_default_ttl_travels_to_the_server(momento_server: LocalMomentoServer) -> None:
    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> None:
        await cache.set(CACHE, "k", "v")  # no ttl: the client's default of 5 minutes

    run_with_clients(momento_server, scenario)

    remaining = momento_server.ttl_remaining_seconds(CACHE, "k")
    assert remaining is not None
    assert 60 < remaining <= 300


def test_unknown_cache_is_not_found_for_every_call(momento_server: LocalMomentoServer) -> None:
    async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> list[object]:
        return [
            await cache.get("no-such-cache", "k"),
            await cache.set("no-such-cache", "k", "v"),
            await cache.set_if_not_exists("no-such-cache", "k", "v"),
            await cache.delete("no-such-cache", "k"),
            await topics.publish("no-such-cache", TOPIC, "m"),
            await topics.subscribe("no-such-cache", TOPIC),
        ]

    responses = run_with_clients(momento_server, scenario)

    assert [response.error_code for response in responses] == [MomentoErrorCode.NOT_FOUND_ERROR] * 6
    assert momento_server.published("no-such-cache", TOPIC) == []


def test_cache_management_through_the_sdk(momento_server: LocalMomentoServer) -> None:
    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[object]:
        return [
            await cache.create_cache("orders"),
            await cache.create_cache("orders"),
            await cache.set("orders", "k", "v"),
            await cache.list_caches(),
            await cache.delete_cache("orders"),
            await cache.get("orders", "k"),
            await cache.delete_cache("orders"),
        ]

    created, again, stored, listed, deleted, after_delete, delete_again = run_with_clients(momento_server, scenario)

    assert isinstance(created, CreateCache.Success)
    assert isinstance(again, CreateCache.CacheAlreadyExists)
    assert isinstance(stored, CacheSet.Success)
    assert isinstance(listed, ListCaches.Success)
    assert sorted(info.name for info in listed.caches) == ["orders", CACHE]
    assert isinstance(deleted, DeleteCache.Success)
    assert after_delete.error_code is MomentoErrorCode.NOT_FOUND_ERROR
    assert delete_again.error_code is MomentoErrorCode.NOT_FOUND_ERROR
    assert momento_server.create_cache(CACHE) is False
    assert momento_server.create_cache("made-by-test") is True


def test_reset_forgets_everything_but_the_constructor_caches() -> None:
    with LocalMomentoServer(caches=["kept"]) as server:
        server.create_cache("extra")

        async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> None:
            await cache.set("kept", "k", "v")
            await topics.publish("kept", TOPIC, "m")

        run_with_clients(server, scenario)
        server.add_fault(FaultRule(method="Get", code=grpc.StatusCode.UNAVAILABLE))
        assert server.calls["Set"] == 1

        server.reset()

        assert server.cache_items("kept") == {}
        assert server.published("kept", TOPIC) == []
        assert server.calls == {}
        with pytest.raises(KeyError):
            server.cache_items("extra")
        got = run_with_clients(server, lambda cache, _: cache.get("kept", "k"))
        assert isinstance(got, CacheGet.Miss)  # the Get fault is gone too
        assert server.injected_faults == {}


# --- topics ------------------------------------------------------------------------------------------------------


def test_subscribe_delivers_messages_published_after_it_in_order(momento_server: LocalMomentoServer) -> None:
    async def scenario(_: CacheClientAsync, topics: TopicClientAsync) -> list[object]:
        await topics.publish(CACHE, TOPIC, "before the subscription")
        subscription = await subscribe(topics)
        try:
            for value in ("one", b"\x00two", '{"key": "k"}'):
                assert isinstance(await topics.publish(CACHE, TOPIC, value), TopicPublish.Success)
            await topics.publish(CACHE, "other-topic", "elsewhere")
            return [await next_item(subscription) for _ in range(3)]
        finally:
            subscription.unsubscribe()

    items = run_with_clients(momento_server, scenario)

    assert isinstance(items[0], TopicSubscriptionItem.Text)
    assert isinstance(items[1], TopicSubscriptionItem.Binary)
    assert isinstance(items[2], TopicSubscriptionItem.Text)
    assert [item.value for item in items] == ["one", b"\x00two", '{"key": "k"}']
    assert [item.sequence_number for item in items] == [2, 3, 4]  # message 1 preceded the subscription
    assert momento_server.published(CACHE, TOPIC) == [b"before the subscription", b"one", b"\x00two", b'{"key": "k"}']
    assert momento_server.published(CACHE, "other-topic") == [b"elsewhere"]


def test_every_subscriber_gets_every_message(momento_server: LocalMomentoServer) -> None:
    async def scenario(_: CacheClientAsync, topics: TopicClientAsync) -> list[list[str]]:
        subscriptions = [await subscribe(topics) for _ in range(2)]
        try:
            await asyncio.gather(*(topics.publish(CACHE, TOPIC, f"m{i}") for i in range(20)))
            return [[(await next_item(s)).value for _ in range(20)] for s in subscriptions]
        finally:
            for subscription in subscriptions:
                subscription.unsubscribe()

    first, second = run_with_clients(momento_server, scenario)

    accepted = [message.decode() for message in momento_server.published(CACHE, TOPIC)]
    assert sorted(accepted) == sorted(f"m{i}" for i in range(20))
    assert first == accepted  # delivery follows the topic sequence
    assert second == accepted


# --- injected faults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "err", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, None, MomentoErrorCode.SERVER_UNAVAILABLE),
        (grpc.StatusCode.INTERNAL, None, MomentoErrorCode.INTERNAL_SERVER_ERROR),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, MomentoErrorCode.TIMEOUT_ERROR),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ERR_OPERATIONS_RATE, MomentoErrorCode.LIMIT_EXCEEDED_ERROR),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ERR_THROUGHPUT_RATE, MomentoErrorCode.LIMIT_EXCEEDED_ERROR),
        (grpc.StatusCode.UNAUTHENTICATED, None, MomentoErrorCode.AUTHENTICATION_ERROR),
        (grpc.StatusCode.PERMISSION_DENIED, None, MomentoErrorCode.PERMISSION_ERROR),
        (grpc.StatusCode.CANCELLED, None, MomentoErrorCode.CANCELLED_ERROR),
    ],
)
def test_each_fault_reaches_the_sdk_as_its_error_code(
    momento_server: LocalMomentoServer, code: grpc.StatusCode, err: str | None, expected: MomentoErrorCode
) -> None:
    momento_server.add_fault(FaultRule(code=code, err=err))  # every method, every key

    async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> list[object]:
        return [await cache.set(CACHE, "k", "v"), await topics.publish(CACHE, TOPIC, "m")]

    set_error, publish_error = run_with_clients(momento_server, scenario)

    for error in (set_error, publish_error):
        assert isinstance(error, CacheSet.Error | TopicPublish.Error)
        assert error.error_code is expected
        assert error.inner_exception.transport_details.grpc.code is code
        assert error_trailer(error) == err
    assert momento_server.cache_items(CACHE) == {}
    assert momento_server.published(CACHE, TOPIC) == []


def test_limit_exceeded_message_follows_the_err_trailer(momento_server: LocalMomentoServer) -> None:
    momento_server.add_fault(FaultRule(method="Set", code=grpc.StatusCode.RESOURCE_EXHAUSTED, err=ERR_THROUGHPUT_RATE))

    error = run_with_clients(momento_server, lambda cache, _: cache.set(CACHE, "k", "v"))

    assert isinstance(error, CacheSet.Error)
    assert "Bandwidth limit exceeded" in error.message  # the SDK's wording for throughput_rate_limit_exceeded


def test_subscribe_fault(momento_server: LocalMomentoServer) -> None:
    momento_server.add_fault(FaultRule(method="Subscribe", code=grpc.StatusCode.UNAVAILABLE))

    response = run_with_clients(momento_server, lambda _, topics: topics.subscribe(CACHE, TOPIC))

    assert isinstance(response, TopicSubscribe.Error)
    assert response.error_code is MomentoErrorCode.SERVER_UNAVAILABLE


def test_sdk_retries_unavailable_on_idempotent_calls_so_times_counts_attempts(
    momento_server: LocalMomentoServer,
) -> None:
    # The SDK (Configurations.Lambda: FixedCountRetryStrategy(max_attempts=3)) retries UNAVAILABLE and INTERNAL on
    # Get/Set/Delete up to 4 attempts in all, with no delay. So `times` counts attempts, not SDK calls: a rule with
    # times=2 is absorbed by the SDK, and only times>=4 (or None) makes one Set fail. Publish is never retried.
    momento_server.add_fault(FaultRule(method="Set", key="absorbed", code=grpc.StatusCode.UNAVAILABLE, times=2))
    momento_server.add_fault(FaultRule(method="Set", key="fails", code=grpc.StatusCode.UNAVAILABLE, times=4))
    momento_server.add_fault(FaultRule(method="Publish", code=grpc.StatusCode.UNAVAILABLE, times=1))

    async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> list[object]:
        return [
            await cache.set(CACHE, "absorbed", "v"),
            await cache.set(CACHE, "fails", "v"),
            await cache.set(CACHE, "fails", "v"),  # the rule is spent: this one succeeds first time
            await topics.publish(CACHE, TOPIC, "lost"),
            await topics.publish(CACHE, TOPIC, "kept"),
        ]

    absorbed, failed, retried_later, publish_failed, published = run_with_clients(momento_server, scenario)

    assert isinstance(absorbed, CacheSet.Success)
    assert isinstance(failed, CacheSet.Error)
    assert failed.error_code is MomentoErrorCode.SERVER_UNAVAILABLE
    assert isinstance(retried_later, CacheSet.Success)
    assert isinstance(publish_failed, TopicPublish.Error)
    assert isinstance(published, TopicPublish.Success)
    assert momento_server.calls["Set"] == 3 + 4 + 1
    assert momento_server.injected_faults["Set"] == 2 + 4
    assert momento_server.calls["Publish"] == 2
    assert momento_server.published(CACHE, TOPIC) == [b"kept"]


def test_faults_match_by_method_and_by_key(momento_server: LocalMomentoServer) -> None:
    momento_server.add_fault(FaultRule(method="Delete", code=grpc.StatusCode.PERMISSION_DENIED))
    momento_server.add_fault(FaultRule(method="Set", key="poison", code=grpc.StatusCode.RESOURCE_EXHAUSTED))
    momento_server.add_fault(FaultRule(method="Publish", key="poison", code=grpc.StatusCode.RESOURCE_EXHAUSTED))

    async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> list[object]:
        return [
            await cache.set(CACHE, "poison", "v"),
            await cache.set(CACHE, "healthy", "v"),
            await cache.get(CACHE, "poison"),
            await cache.delete(CACHE, "healthy"),
            await topics.publish(CACHE, TOPIC, json.dumps({"key": "poison", "eventName": "INSERT"})),
            await topics.publish(CACHE, TOPIC, json.dumps({"key": "healthy"}).encode()),
            await topics.publish(CACHE, TOPIC, "poison, but not JSON"),
        ]

    set_poison, set_healthy, get_poison, delete, publish_poison, publish_healthy, publish_text = run_with_clients(
        momento_server, scenario
    )

    assert set_poison.error_code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR
    assert isinstance(set_healthy, CacheSet.Success)
    assert isinstance(get_poison, CacheGet.Miss)  # key rules are per method
    assert delete.error_code is MomentoErrorCode.PERMISSION_ERROR
    assert publish_poison.error_code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR
    assert isinstance(publish_healthy, TopicPublish.Success)
    assert isinstance(publish_text, TopicPublish.Success)
    assert momento_server.cache_items(CACHE) == {"healthy": b"v"}
    assert momento_server.injected_faults == {"Set": 1, "Delete": 1, "Publish": 1}


def _outcomes_of_probable_faults(server: LocalMomentoServer) -> list[bool]:
    # RESOURCE_EXHAUSTED is not retried by the SDK, so each call draws exactly once; calls run one at a time.
    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[bool]:
        return [isinstance(await cache.set(CACHE, f"k{i}", "v"), CacheSet.Error) for i in range(40)]

    server.add_fault(FaultRule(method="Set", code=grpc.StatusCode.RESOURCE_EXHAUSTED, probability=0.5))
    return run_with_clients(server, scenario)


def test_probability_is_reproducible_with_the_seed(momento_server: LocalMomentoServer) -> None:
    first = _outcomes_of_probable_faults(momento_server)
    momento_server.reset()
    momento_server.create_cache(CACHE)
    second = _outcomes_of_probable_faults(momento_server)
    with LocalMomentoServer(caches=[CACHE], seed=12345) as other_seed:
        third = _outcomes_of_probable_faults(other_seed)

    assert first == second
    assert 0 < sum(first) < len(first)
    assert third != first  # 40 fair draws agreeing by chance: 2**-40
    assert momento_server.injected_faults["Set"] == sum(second)


def test_apply_then_fail_applies_the_write_and_still_fails(momento_server: LocalMomentoServer) -> None:
    for method in ("Set", "Delete", "Publish"):
        momento_server.add_fault(FaultRule(method=method, code=grpc.StatusCode.DEADLINE_EXCEEDED, apply_then_fail=True))
    momento_server.add_fault(FaultRule(method="Get", code=grpc.StatusCode.DEADLINE_EXCEEDED, apply_then_fail=True))

    async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> list[object]:
        subscription = await subscribe(topics)
        try:
            responses = [
                await cache.set(CACHE, "written", "v"),
                await cache.set(CACHE, "deleted", "v"),
                await cache.delete(CACHE, "deleted"),
                await cache.get(CACHE, "written"),
                await topics.publish(CACHE, TOPIC, "delivered"),
            ]
            return [*responses, await next_item(subscription)]
        finally:
            subscription.unsubscribe()

    *responses, delivered = run_with_clients(momento_server, scenario)

    assert [response.error_code for response in responses] == [MomentoErrorCode.TIMEOUT_ERROR] * 5
    assert momento_server.cache_items(CACHE) == {"written": b"v"}
    assert momento_server.published(CACHE, TOPIC) == [b"delivered"]
    assert isinstance(delivered, TopicSubscriptionItem.Text)
    assert delivered.value == "delivered"


def test_latency_only_fault_delays_and_succeeds(momento_server: LocalMomentoServer) -> None:
    momento_server.add_fault(FaultRule(method="Get", code=None, latency_seconds=0.05, times=1))

    async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[object]:
        await cache.set(CACHE, "k", "v")
        return [await cache.get(CACHE, "k"), await cache.get(CACHE, "k")]

    delayed, plain = run_with_clients(momento_server, scenario)

    assert isinstance(delayed, CacheGet.Hit)
    assert isinstance(plain, CacheGet.Hit)
    assert momento_server.injected_faults == {"Get": 1}


def test_latency_past_the_client_deadline_is_a_timeout(momento_server: LocalMomentoServer) -> None:
    # The server holds the call 1 s; the client gives up after 0.2 s (a margin no noisy machine closes).
    momento_server.add_fault(FaultRule(method="Get", code=None, latency_seconds=1.0))
    short_deadline = Configurations.Lambda.latest().with_client_timeout(timedelta(milliseconds=200))

    response = run_with_clients(momento_server, lambda cache, _: cache.get(CACHE, "k"), short_deadline)

    assert isinstance(response, CacheGet.Error)
    assert response.error_code is MomentoErrorCode.TIMEOUT_ERROR
    assert momento_server.calls["Get"] == 1  # DEADLINE_EXCEEDED is not retried


def test_item_size_limit() -> None:
    with LocalMomentoServer(caches=[CACHE], max_item_bytes=1024) as server:

        async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> list[object]:
            return [
                await cache.set(CACHE, "k", "v" * 1023),  # key + value == the limit
                await cache.set(CACHE, "big", "v" * 1022),
                await cache.set_if_not_exists(CACHE, "other", "v" * 1024),
            ]

        at_limit, too_big, too_big_too = run_with_clients(server, scenario)

        assert isinstance(at_limit, CacheSet.Success)
        for error in (too_big, too_big_too):
            assert error.error_code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR
            assert error_trailer(error) == ERR_ITEM_SIZE
            assert "Item size limit exceeded" in error.message
        assert server.cache_items(CACHE) == {"k": b"v" * 1023}
        assert server.injected_faults == {}


def test_fault_rule_validation() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultRule(code=grpc.StatusCode.UNAVAILABLE, probability=1.5)
    with pytest.raises(ValueError, match="code, a latency"):
        FaultRule(code=None)
    with pytest.raises(ValueError, match="need a code"):
        FaultRule(code=None, latency_seconds=0.1, apply_then_fail=True)
    with pytest.raises(ValueError, match="times"):
        FaultRule(code=grpc.StatusCode.INTERNAL, times=-1)


def test_fault_rate_fails_about_that_share_of_each_method() -> None:
    rules = fault_rate(0.2)
    book = FaultBook(seed=7)
    book.add(rules)
    picks = [book.pick(method, lambda: None) for method in ("Set", "Delete", "Publish", "Get") for _ in range(3000)]

    def share(method: str) -> float:
        index = ("Set", "Delete", "Publish", "Get").index(method)
        chosen = picks[index * 3000 : (index + 1) * 3000]
        return sum(rule is not None for rule in chosen) / len(chosen)

    assert {rule.method for rule in rules} == {"Set", "Delete", "Publish"}
    assert {rule.code for rule in rules} == {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    for method in ("Set", "Delete", "Publish"):
        assert 0.17 < share(method) < 0.23
    assert share("Get") == 0
    assert fault_rate(0.0) == []
    throttles = [rule for rule in rules if rule.code is grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert {rule.err for rule in throttles} == {ERR_OPERATIONS_RATE}


Call = tuple[str, str, bytes | None]  # method, key, value


def _fault_outcomes(book: FaultBook, calls: list[Call]) -> dict[Call, list[bool]]:
    """Whether each call was faulted, listed per call identity in the order that identity was seen."""
    outcomes: dict[Call, list[bool]] = {}
    for method, key, value in calls:
        fired = book.pick(method, lambda key=key: key, value) is not None
        outcomes.setdefault((method, key, value), []).append(fired)
    return outcomes


def _book(seed: int, *, by_value: bool = True) -> FaultBook:
    book = FaultBook(seed=seed, by_value=by_value)
    book.add([FaultRule(code=grpc.StatusCode.UNAVAILABLE, probability=0.5)])
    return book


# Three attempts of each of 30 identities: two values per key, and a Delete, as writers of one key would send.
CALLS: list[Call] = [
    (method, f"k{index}", value)
    for index in range(10)
    for method, value in (("Set", b"old"), ("Set", b"new"), ("Delete", None))
    for _attempt in range(3)
]


def test_probabilistic_faults_follow_each_calls_identity_not_the_arrival_order() -> None:
    interleaved = CALLS.copy()
    random.Random(1).shuffle(interleaved)  # attempts of one identity keep their order: they are the same call

    in_order = _fault_outcomes(_book(seed=3), CALLS)
    shuffled = _fault_outcomes(_book(seed=3), interleaved)

    assert in_order == shuffled
    fired = [fault for outcomes in in_order.values() for fault in outcomes]
    assert 0 < sum(fired) < len(fired)
    assert any(len(set(outcomes)) == 2 for outcomes in in_order.values())  # the attempt is part of the identity


def test_the_value_is_part_of_the_identity_unless_left_out() -> None:
    def faults_in_call_order(book: FaultBook, calls: list[Call]) -> list[bool]:
        return [book.pick(method, lambda key=key: key, value) is not None for method, key, value in calls]

    other_values = [(method, key, None if value is None else b"other " + value) for method, key, value in CALLS]

    assert faults_in_call_order(_book(seed=3), CALLS) != faults_in_call_order(_book(seed=3), other_values)
    assert faults_in_call_order(_book(seed=3, by_value=False), CALLS) == faults_in_call_order(
        _book(seed=3, by_value=False), other_values
    )


def test_seeds_differ_and_reseeding_starts_the_attempts_over() -> None:
    book = _book(seed=3)
    first = _fault_outcomes(book, CALLS)
    continued = _fault_outcomes(book, CALLS)  # the same calls again are later attempts
    book.clear(reseed=True)
    book.add([FaultRule(code=grpc.StatusCode.UNAVAILABLE, probability=0.5)])
    reseeded = _fault_outcomes(book, CALLS)

    assert continued != first
    assert reseeded == first
    assert _fault_outcomes(_book(seed=4), CALLS) != first


def test_concurrent_calls_through_the_sdk_get_the_same_faults_in_any_order(momento_server: LocalMomentoServer) -> None:
    # RESOURCE_EXHAUSTED is not retried by the SDK: each set is one attempt.
    keys = [f"k{index}" for index in range(40)]

    def outcomes(order: list[str]) -> dict[str, bool]:
        momento_server.reset()
        momento_server.create_cache(CACHE)
        momento_server.add_fault(FaultRule(method="Set", code=grpc.StatusCode.RESOURCE_EXHAUSTED, probability=0.5))

        async def scenario(cache: CacheClientAsync, _: TopicClientAsync) -> dict[str, bool]:
            responses = await asyncio.gather(*(cache.set(CACHE, key, f"value of {key}") for key in order))
            return {key: isinstance(response, CacheSet.Error) for key, response in zip(order, responses, strict=True)}

        return run_with_clients(momento_server, scenario)

    forward = outcomes(keys)
    backward = outcomes(keys[::-1])

    assert forward == backward
    assert 0 < sum(forward.values()) < len(keys)
    assert set(momento_server.cache_items(CACHE)) == {key for key, failed in forward.items() if not failed}


def test_a_busy_port_is_an_error_not_a_silent_second_server(momento_server: LocalMomentoServer) -> None:
    with pytest.raises(OSError, match="cannot bind"):
        LocalMomentoServer(port=momento_server.port).start()


# --- separate process ---------------------------------------------------------------------------------------------


def test_server_process_serves_the_sdk_and_stops_on_sigterm() -> None:
    with start_server_process(caches=["proc-cache"]) as process:
        assert process.endpoint == f"127.0.0.1:{process.port}"

        async def scenario(cache: CacheClientAsync, topics: TopicClientAsync) -> list[object]:
            return [
                await cache.set("proc-cache", "k", "v"),
                await cache.get("proc-cache", "k"),
                await topics.publish("proc-cache", TOPIC, "m"),
            ]

        stored, got, published = run_with_clients(process, scenario)

        assert isinstance(stored, CacheSet.Success)
        assert isinstance(got, CacheGet.Hit)
        assert got.value_string == "v"
        assert isinstance(published, TopicPublish.Success)
        assert process.stop() == 0  # a clean exit on SIGTERM
    assert process.process.poll() == 0


# --- fixtures -----------------------------------------------------------------------------------------------------


def test_momento_env_points_at_the_server(momento_env: dict[str, str], momento_server: LocalMomentoServer) -> None:
    assert momento_env == {
        "MOMENTO_LOCAL_ENDPOINT": momento_server.endpoint,
        "CACHE_NAME": CACHE,
        "TOPIC_NAME": TOPIC,
    }
    host, port = momento_env["MOMENTO_LOCAL_ENDPOINT"].rsplit(":", 1)
    assert (host, int(port)) == ("127.0.0.1", momento_server.port)
    assert momento_server.cache_items(CACHE) == {}
