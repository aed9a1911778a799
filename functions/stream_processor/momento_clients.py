"""Momento clients for the container's lifetime: one event loop, the SDK clients, the three calls the executor makes.

The SDK's async clients are bound to the event loop they first ran on (a client created under one ``asyncio.run()``
fails under the next), so the container keeps ONE loop and runs every invocation on it with ``run_until_complete``.
Clients use ``Configurations.Lambda`` (keepalive off: Lambda freezes the CPU between invocations) without the SDK's
retry strategy (``without_sdk_retries``): the callers retry every call themselves, with backoff, within the deadline.

Key rotation: with ``MOMENTO_API_KEY_SECRET``, a call refused for authentication makes the runtime re-read the secret
(bypassing Powertools' cache), open new clients with the new key on the same loop, retry the call once, and close the
old clients once their last call has returned. Calls that fail together wait for one re-read; after a re-read, the
next one waits ``key_recheck_seconds``, so a key that is really refused costs one secret read per period, not one per
call. Only when the secret's current key is refused too is the failure systemic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from momento import CacheClientAsync, Configurations, CredentialProvider, TopicClientAsync, TopicConfigurations
from momento.config import Configuration
from momento.errors import MomentoErrorCode
from momento.responses import CacheDelete, CacheSet, TopicPublish

from stream_processor.config import ConfigurationError, MomentoConnection, Settings
from stream_processor.momento_credentials import credential_provider, read_api_key
from stream_processor.momento_errors import CallFailure, MomentoTarget, classify
from stream_processor.observability import logger

# credential_provider and read_api_key are re-exported for callers.
__all__ = ["MomentoRuntime", "credential_provider", "read_api_key", "without_sdk_retries"]

T = TypeVar("T")
#: Longest a single cache call can take (Configurations.Lambda's deadline) and a publish (TopicConfigurations.Default).
CACHE_CALL_SECONDS = 1.1
PUBLISH_CALL_SECONDS = 5.0


def without_sdk_retries(configuration: Configuration) -> Configuration:
    """``configuration`` with no retry strategy, so the SDK builds its cache channel without a retry interceptor.

    Retrying is the callers' job (``retries.call_with_retries``: backoff with jitter, counted, as long as the deadline
    affords another call). Configurations.Lambda's ``FixedCountRetryStrategy`` would add up to three immediate
    retries inside each call, with no backoff against an unavailable or throttling service, each with the full
    deadline: a call could last four deadlines, which the deadline arithmetic (one worst-case call of
    ``CACHE_CALL_SECONDS``) does not allow for. Without a strategy the SDK leaves the interceptor out of the channel,
    as it does for its own topic channel (which also saves a little CPU per call: benchmarks/results.md).
    """
    return configuration.with_retry_strategy(None)  # type: ignore[arg-type]  # None: no retry interceptor


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


def _target(connection: MomentoConnection, credentials: CredentialProvider, cache: str, topic: str) -> MomentoTarget:
    """What failure causes name: the cache and topic, the endpoint and its variable, where the key comes from."""
    if connection.is_local:
        endpoint, variable = f"{connection.local_host}:{connection.local_port}", "MOMENTO_LOCAL_ENDPOINT"
    else:
        endpoint = f"{credentials.cache_endpoint}:{credentials.port}"
        variable = "MOMENTO_ENDPOINT" if connection.endpoint else None
    if connection.api_key_secret:
        key_source = f"the secret {connection.api_key_secret!r} named by MOMENTO_API_KEY_SECRET"
    else:
        key_source = "MOMENTO_API_KEY" if connection.api_key else None
    return MomentoTarget(cache, topic, endpoint, variable, key_source)


@dataclasses.dataclass(eq=False)
class _Clients:
    """One generation of SDK clients (one API key), and how many calls are using it right now."""

    cache: CacheClientAsync
    topics: TopicClientAsync
    in_flight: int = 0
    retired: bool = False
    closed: bool = False

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.cache.__aexit__(None, None, None)  # the async cache client only closes as a context manager
            await self.topics.close()

    async def retire(self) -> None:
        """Close clients replaced by newer ones: a failure to close costs a log line, never the call that closes."""
        try:
            await self.close()
        except Exception as error:
            logger.warning("closing replaced Momento clients failed", extra={"error": f"{type(error).__name__}"})


class MomentoRuntime:
    """One event loop and the Momento clients bound to it, kept for the container's lifetime."""

    cache_call_seconds = CACHE_CALL_SECONDS
    publish_call_seconds = PUBLISH_CALL_SECONDS
    #: Least time between two re-reads of the secret after authentication failures.
    key_recheck_seconds = 30.0

    def __init__(
        self,
        connection: MomentoConnection,
        cache_name: str,
        topic_name: str,
        default_ttl: timedelta,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_configuration: Configuration | None = None,
    ):
        self.connection = connection
        # Configurations.Lambda unless told otherwise (tests that hold writes in the server need a longer deadline).
        self.cache_configuration = without_sdk_retries(cache_configuration or Configurations.Lambda.latest())
        if cache_configuration is not None:
            deadline = cache_configuration.get_transport_strategy().get_grpc_configuration().get_deadline()
            self.cache_call_seconds = deadline.total_seconds()
        self.cache_name = cache_name
        self.topic_name = topic_name
        self.default_ttl = default_ttl
        self.loop = asyncio.new_event_loop()
        self._clock = clock
        self._api_key = read_api_key(connection)
        self.target = MomentoTarget()
        self.reuses_stubs = False
        self._clients = self.loop.run_until_complete(self._open(self._api_key))
        self._retired: list[_Clients] = []
        self._key_lock = asyncio.Lock()
        self._last_key_read: float | None = None  # clock time of the last re-read after an authentication failure
        self._key_problem: str | None = None  # why the last re-read gave no usable key
        #: Re-reads of the secret after authentication failures, and how many of them brought a new key.
        self.key_reads = 0
        self.key_changes = 0

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> MomentoRuntime:
        """The runtime for a validated configuration (cache, topic, default TTL, connection)."""
        return cls(
            settings.momento,
            settings.cache_name,
            settings.topic_name,
            timedelta(seconds=settings.default_ttl_seconds),
            **options,
        )

    @property
    def cache(self) -> CacheClientAsync:
        """The current cache client (replaced when the API key changes)."""
        return self._clients.cache

    @property
    def topics(self) -> TopicClientAsync:
        """The current topic client (replaced when the API key changes)."""
        return self._clients.topics

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to completion on the container's loop."""
        return self.loop.run_until_complete(coroutine)

    async def set(self, key: str, value: bytes, ttl_ms: int) -> CallFailure | None:
        ttl = timedelta(milliseconds=ttl_ms)
        return await self._call(lambda clients: clients.cache.set(self.cache_name, key, value, ttl), CacheSet.Success)

    async def delete(self, key: str) -> CallFailure | None:
        return await self._call(lambda clients: clients.cache.delete(self.cache_name, key), CacheDelete.Success)

    async def publish(self, message: bytes) -> CallFailure | None:
        # Published as text: change messages are UTF-8 JSON and subscribers (browsers, SDKs) read them as text.
        text = message.decode("utf-8")
        return await self._call(
            lambda clients: clients.topics.publish(self.cache_name, self.topic_name, text), TopicPublish.Success
        )

    def close(self) -> None:
        async def close_clients() -> None:
            for clients in [*self._retired, self._clients]:
                await clients.close()

        self.loop.run_until_complete(close_clients())
        self.loop.close()

    # --- calls, and the key rotation behind them ---------------------------------------------------------------

    async def _call(self, operation: Callable[[_Clients], Awaitable[Any]], success: type) -> CallFailure | None:
        clients = self._clients
        response = await self._on(clients, operation)
        if isinstance(response, success):
            return None
        if _refused_key(response) and await self._renew_key(clients):
            response = await self._on(self._clients, operation)
            if isinstance(response, success):
                return None
        failure = classify(response, self.target)
        if _refused_key(response) and self._key_problem:
            return CallFailure(failure.kind, f"{failure.cause}; re-reading the secret: {self._key_problem}")
        return failure

    async def _on(self, clients: _Clients, operation: Callable[[_Clients], Awaitable[T]]) -> T:
        clients.in_flight += 1
        try:
            return await operation(clients)
        finally:
            clients.in_flight -= 1
            if clients.retired and not clients.in_flight:
                await clients.retire()
                self._retired.remove(clients)

    async def _renew_key(self, refused: _Clients) -> bool:
        """After ``refused`` failed to authenticate: whether newer clients are there to retry with.

        One call at a time re-reads the secret (the others wait on the lock and then find the new clients, or the
        recent re-read); a re-read bypasses Powertools' cache and happens at most once per ``key_recheck_seconds``.
        """
        if not self.connection.api_key_secret:
            return False
        async with self._key_lock:
            if self._clients is not refused:
                return True  # another call renewed the key meanwhile
            now = self._clock()
            if self._last_key_read is not None and now - self._last_key_read < self.key_recheck_seconds:
                return False  # the secret was re-read moments ago: its key is the one refused
            self._last_key_read = now
            self.key_reads += 1
            try:
                # A blocking read on the loop: every call that needs the key is waiting for it anyway.
                api_key = read_api_key(self.connection, fresh=True)
                if api_key == self._api_key:
                    self._key_problem = None
                    logger.warning(
                        "Momento refused the API key and the secret still holds the same key",
                        extra={"secret": self.connection.api_key_secret},
                    )
                    return False
                fresh = await self._open(api_key)
            except ConfigurationError as problem:
                self._key_problem = str(problem)
                return False
            self._key_problem = None
            self._api_key, self._clients = api_key, fresh
            self.key_changes += 1
            logger.info(
                "Momento API key re-read from the secret after an authentication failure: new clients in use",
                extra={"secret": self.connection.api_key_secret},
            )
            refused.retired = True
            if refused.in_flight:
                self._retired.append(refused)  # closed by its last call
            else:
                await refused.retire()
            return True

    async def _open(self, api_key: str | None) -> _Clients:
        """Clients for this key, opened inside the loop so that their gRPC channels bind to it."""
        credentials = credential_provider(self.connection, api_key)
        cache = CacheClientAsync(self.cache_configuration, credentials, self.default_ttl)
        topics = TopicClientAsync(TopicConfigurations.Default.latest(), credentials)
        self.reuses_stubs = _reuse_cache_stubs(cache)
        self.target = _target(self.connection, credentials, self.cache_name, self.topic_name)
        return _Clients(cache, topics)


def _refused_key(response: Any) -> bool:
    return getattr(response, "error_code", None) is MomentoErrorCode.AUTHENTICATION_ERROR
