"""Momento clients for the container's lifetime: credentials, one event loop, and the three calls the executor makes.

The SDK's async clients are bound to the event loop they first ran on (a client created under one ``asyncio.run()``
fails under the next), so the container keeps ONE loop and runs every invocation on it with ``run_until_complete``.
Clients use ``Configurations.Lambda`` (keepalive off: Lambda freezes the CPU between invocations).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from momento import CacheClientAsync, Configurations, CredentialProvider, TopicClientAsync, TopicConfigurations
from momento.responses import CacheDelete, CacheSet, TopicPublish

from stream_processor.config import ConfigurationError, MomentoConnection, Settings
from stream_processor.momento_errors import CallFailure, classify

__all__ = ["MomentoRuntime", "credential_provider"]

T = TypeVar("T")
#: Longest a single cache call can take (Configurations.Lambda's deadline) and a publish (TopicConfigurations.Default).
CACHE_CALL_SECONDS = 1.1
PUBLISH_CALL_SECONDS = 5.0


def credential_provider(connection: MomentoConnection) -> CredentialProvider:
    """The SDK credential provider for the configured connection; the API key is read from the secret if needed."""
    if connection.is_local:
        return CredentialProvider.for_momento_local(connection.local_host, connection.local_port)
    if connection.api_key_secret:
        from aws_lambda_powertools.utilities import parameters  # boto3 is only imported when a secret is used

        try:
            api_key = parameters.get_secret(connection.api_key_secret, max_age=300)
        except Exception as error:
            raise ConfigurationError(
                f"MOMENTO_API_KEY_SECRET: cannot read secret {connection.api_key_secret!r}: "
                f"{type(error).__name__} (check the secret id and the function's secretsmanager:GetSecretValue)"
            ) from None
        source = "MOMENTO_API_KEY_SECRET"
    else:
        api_key = connection.api_key
        source = "MOMENTO_API_KEY"
    api_key = (api_key or "").strip()
    if not api_key:
        raise ConfigurationError(f"{source} gives an empty Momento API key")
    try:
        if connection.endpoint:
            return CredentialProvider.from_api_key_v2(api_key, connection.endpoint)
        with warnings.catch_warnings():  # legacy keys carry their endpoint; the SDK marks this path deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return CredentialProvider.from_string(api_key)
    except Exception as error:
        hint = "a v2 key with MOMENTO_ENDPOINT" if connection.endpoint else "set MOMENTO_ENDPOINT for v2 keys"
        raise ConfigurationError(
            f"{source} does not hold a usable Momento API key ({type(error).__name__}; {hint})"
        ) from None


def _reuse_cache_stubs(cache: CacheClientAsync) -> bool:
    """Make each data channel hand out one gRPC stub instead of building a new one per call.

    momento 1.29.1 builds a fresh ``ScsStub`` (about 46 method handles) for every cache call, 40-60 us of CPU each
    time: about 9% of the handler's CPU per change (see benchmarks/results.md). A stub is a stateless wrapper of its
    channel and the SDK never replaces a manager's channel, so one stub per channel is equivalent. This reaches into
    private SDK attributes, so it is guarded: if they are not there (another SDK version), nothing changes and
    False is returned (a test watches for that on upgrades).
    """
    managers = [getattr(client, "_grpc_manager", None) for client in getattr(cache, "_data_clients", ())]
    if not managers or not all(callable(getattr(manager, "async_stub", None)) for manager in managers):
        return False
    for manager in managers:
        stub = manager.async_stub()
        manager.async_stub = lambda stub=stub: stub
    return True


class MomentoRuntime:
    """One event loop and the Momento clients bound to it, kept for the container's lifetime."""

    cache_call_seconds = CACHE_CALL_SECONDS
    publish_call_seconds = PUBLISH_CALL_SECONDS

    def __init__(self, connection: MomentoConnection, cache_name: str, topic_name: str, default_ttl: timedelta):
        self.cache_name = cache_name
        self.topic_name = topic_name
        self.loop = asyncio.new_event_loop()
        credentials = credential_provider(connection)

        async def build() -> tuple[CacheClientAsync, TopicClientAsync]:
            # Built inside the loop so the gRPC channels bind to it.
            return (
                CacheClientAsync(Configurations.Lambda.latest(), credentials, default_ttl),
                TopicClientAsync(TopicConfigurations.Default.latest(), credentials),
            )

        self.cache, self.topics = self.loop.run_until_complete(build())
        self.reuses_stubs = _reuse_cache_stubs(self.cache)

    @classmethod
    def from_settings(cls, settings: Settings) -> MomentoRuntime:
        """The runtime for a validated configuration (cache, topic, default TTL, connection)."""
        return cls(
            settings.momento, settings.cache_name, settings.topic_name, timedelta(seconds=settings.default_ttl_seconds)
        )

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to completion on the container's loop."""
        return self.loop.run_until_complete(coroutine)

    async def set(self, key: str, value: bytes, ttl_ms: int) -> CallFailure | None:
        response = await self.cache.set(self.cache_name, key, value, timedelta(milliseconds=ttl_ms))
        return None if isinstance(response, CacheSet.Success) else classify(response)

    async def delete(self, key: str) -> CallFailure | None:
        response = await self.cache.delete(self.cache_name, key)
        return None if isinstance(response, CacheDelete.Success) else classify(response)

    async def publish(self, message: bytes) -> CallFailure | None:
        # Published as text: change messages are UTF-8 JSON and subscribers (browsers, SDKs) read them as text.
        response = await self.topics.publish(self.cache_name, self.topic_name, message.decode("utf-8"))
        return None if isinstance(response, TopicPublish.Success) else classify(response)

    def close(self) -> None:
        async def close_clients() -> None:
            await self.cache.__aexit__(None, None, None)  # the async cache client only closes as a context manager
            await self.topics.close()

        self.loop.run_until_complete(close_clients())
        self.loop.close()
