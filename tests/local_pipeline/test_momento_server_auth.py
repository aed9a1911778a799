"""The local server's required token: the real SDK is refused without it, as by Momento, and accepted with it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from momento import CacheClientAsync, Configurations, CredentialProvider, TopicClientAsync, TopicConfigurations
from momento.errors import MomentoErrorCode
from momento.responses import CacheGet, CacheSet, TopicPublish, TopicSubscribe

from local_pipeline.momento_server import LocalMomentoServer

CACHE = "test-cache"


def with_token(server: LocalMomentoServer, token: str) -> CredentialProvider:
    return dataclasses.replace(CredentialProvider.for_momento_local(server.host, server.port), auth_token=token)


def calls(credentials: CredentialProvider) -> list[object]:
    """A set, a get, a publish and a subscribe with these credentials; their responses."""

    async def main() -> list[object]:
        async with (
            CacheClientAsync(Configurations.Lambda.latest(), credentials, timedelta(minutes=1)) as cache,
            TopicClientAsync(TopicConfigurations.Default.latest(), credentials) as topics,
        ):
            responses = [
                await cache.set(CACHE, "k", "v"),
                await cache.get(CACHE, "k"),
                await topics.publish(CACHE, "topic", "m"),
            ]
            subscription = await topics.subscribe(CACHE, "topic")
            if isinstance(subscription, TopicSubscribe.SubscriptionAsync):
                subscription.unsubscribe()
            return [*responses, subscription]

    return asyncio.run(main())


def test_calls_without_the_required_token_are_unauthenticated_like_momento() -> None:
    with LocalMomentoServer(caches=[CACHE], auth_token="key-1") as server:
        for credentials in (CredentialProvider.for_momento_local(server.host, server.port), with_token(server, "k")):
            responses = calls(credentials)
            assert [response.error_code for response in responses] == [MomentoErrorCode.AUTHENTICATION_ERROR] * 4
        assert server.cache_items(CACHE) == {}
        assert server.calls["Set"] == 0  # refused before any servicer
        assert server.unauthenticated_calls["Set"] >= 2


def test_calls_with_the_token_are_served_and_the_token_can_change_at_runtime() -> None:
    with LocalMomentoServer(caches=[CACHE], auth_token="key-1") as server:
        set_, get, publish, subscribe = calls(server.credential_provider())
        assert isinstance(set_, CacheSet.Success) and isinstance(get, CacheGet.Hit)
        assert isinstance(publish, TopicPublish.Success) and isinstance(subscribe, TopicSubscribe.SubscriptionAsync)

        server.require_auth_token("key-2")
        assert calls(with_token(server, "key-1"))[0].error_code is MomentoErrorCode.AUTHENTICATION_ERROR
        assert isinstance(calls(with_token(server, "key-2"))[0], CacheSet.Success)

        server.require_auth_token(None)
        assert isinstance(calls(CredentialProvider.for_momento_local(server.host, server.port))[0], CacheSet.Success)


def test_reset_restores_the_constructors_token() -> None:
    with LocalMomentoServer(caches=[CACHE]) as server:
        server.require_auth_token("key-2")
        server.reset()
        assert server.auth_token is None
        assert isinstance(calls(server.credential_provider())[0], CacheSet.Success)
