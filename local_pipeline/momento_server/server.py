"""`LocalMomentoServer`: the Momento services on a gRPC server on loopback, for tests, `make run` and benchmarks."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import grpc
from momento import CredentialProvider

from .faults import FaultBook, FaultRule
from .holds import HoldBook, WriteHold
from .servicers import CallRunner, CallStats, TokenCheck, add_servicers
from .store import MomentoStore

DEFAULT_MAX_ITEM_BYTES = 5 * 1024 * 1024
# Enough for a benchmark's concurrency plus open subscriptions (each holds a worker while it lasts).
DEFAULT_WORKERS = 64


class LocalMomentoServer:
    """A Momento-compatible server on loopback that the real `momento` SDK talks to over real gRPC.

    Momento's own `momento-local` ships only as a Docker image and there is no container engine here, so
    the project serves the Momento wire protocol itself, from the servicers generated in `momento_wire_types`
    (`cacheclient_pb2_grpc.ScsServicer`, `cachepubsub_pb2_grpc.PubsubServicer`,
    `controlclient_pb2_grpc.ScsControlServicer`). `CredentialProvider.for_momento_local(host, port)` gives
    the SDK a plaintext channel to it.

    Besides Get/Set/SetIfNotExists/Delete (with TTLs), Publish/Subscribe and cache management, it records
    every call and topic message for tests, injects faults (`add_fault`) reproducibly from `seed` and the call's
    identity (with `faults_by_value` False the value is left out of it), and holds chosen writes until a test
    releases them (`hold_writes`). With `auth_token` (or `require_auth_token` while it runs) it answers
    UNAUTHENTICATED, as Momento does, to every call that does not carry that token. Inspection methods can be
    called from any thread.

    It uses gRPC's thread-pool server rather than `grpc.aio`: measured on this project's 2-core machine
    against one async SDK client, the `grpc.aio` server spent about 300-340 us of CPU per unary call and
    the thread-pool server about 190-250 us, which left the SDK client (about 300 us per call) as the
    bottleneck of a benchmark instead of the server. Handlers run on the server's worker threads, so the
    caller's event loop stays free. For benchmarks, run it in its own process (`start_server_process`).

    Example::

        with LocalMomentoServer(caches=["cache"]) as server:
            client = CacheClientAsync(Configurations.Lambda.latest(), server.credential_provider(), ttl)
            ...
            assert server.cache_items("cache") == {"k": b"v"}
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        caches: Iterable[str] = (),
        max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES,
        seed: int = 0,
        faults_by_value: bool = True,
        auth_token: str | None = None,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._initial_caches = tuple(caches)
        self._max_item_bytes = max_item_bytes
        self._store = MomentoStore(self._initial_caches)
        self._faults = FaultBook(seed, by_value=faults_by_value)
        self._stats = CallStats()
        self._holds = HoldBook()
        self._initial_auth_token = auth_token
        self._token_check = TokenCheck(auth_token)
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._port: int | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> LocalMomentoServer:
        """Bind and start serving; returns self. The port is known (`.port`) when this returns."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        message_limit = max(self._max_item_bytes, DEFAULT_MAX_ITEM_BYTES) + 1024 * 1024
        executor = ThreadPoolExecutor(max_workers=DEFAULT_WORKERS, thread_name_prefix="local-momento")
        server = grpc.server(
            executor,
            interceptors=[self._token_check],
            options=[
                # Let oversized items reach the handler, which answers as Momento does (item_size_limit_exceeded).
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
                # gRPC sets SO_REUSEPORT by default: binding a busy fixed port would then succeed silently.
                ("grpc.so_reuseport", 0),
                # Accept the SDK's keepalive pings on idle connections, as Momento does (gRPC's default policy
                # answers them with GOAWAY too_many_pings, which kills idle subscriptions and their channel).
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        add_servicers(server, self._store, CallRunner(self._faults, self._stats, self._holds), self._max_item_bytes)
        try:
            port = server.add_insecure_port(f"{self._host}:{self._requested_port}")
        except RuntimeError as error:
            executor.shutdown(wait=False)
            raise OSError(f"cannot bind {self._host}:{self._requested_port}: {error}") from error
        server.start()
        self._server, self._executor, self._port = server, executor, port
        return self

    def stop(self) -> None:
        """Stop serving (open subscriptions end, held writes are released); does nothing when not running."""
        self._holds.release_all()
        server, executor = self._server, self._executor
        self._server = self._executor = None
        if server is not None:
            # No grace: open subscriptions would otherwise hold the stop for the whole grace period.
            server.stop(grace=None).wait()
        if executor is not None:
            executor.shutdown(wait=False)  # a worker still sleeping out an injected latency finishes on its own

    def __enter__(self) -> LocalMomentoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- where clients connect ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def endpoint(self) -> str:
        """`host:port`, the form of MOMENTO_LOCAL_ENDPOINT."""
        return f"{self.host}:{self.port}"

    def credential_provider(self) -> CredentialProvider:
        """The SDK's credentials for this server: plaintext, with the required token if there is one."""
        local = CredentialProvider.for_momento_local(self.host, self.port)
        token = self._token_check.token
        # The SDK sends `auth_token` as the `authorization` metadata; port 443 aside, the channel stays plaintext.
        return local if token is None else dataclasses.replace(local, auth_token=token)

    # --- authentication -------------------------------------------------------------------------------------

    @property
    def auth_token(self) -> str | None:
        """The token every call must carry; None when any call is accepted."""
        return self._token_check.token

    def require_auth_token(self, token: str | None) -> None:
        """Require `token` from now on (None: accept any call), e.g. to rotate the key under running clients."""
        self._token_check.token = token

    @property
    def unauthenticated_calls(self) -> Counter[str]:
        """Calls answered UNAUTHENTICATED per method name (they reach no servicer, so `calls` omits them)."""
        return self._token_check.refused()

    # --- inspection and set-up for tests --------------------------------------------------------------------

    def create_cache(self, name: str) -> bool:
        """Create a cache; False when it already exists."""
        return self._store.create_cache(name)

    def cache_items(self, cache_name: str) -> dict[str, bytes]:
        """Live (unexpired) items of a cache, keys decoded as UTF-8. KeyError for an unknown cache."""
        return {key.decode("utf-8", "replace"): item.value for key, item in self._store.items(cache_name).items()}

    def ttl_remaining_seconds(self, cache_name: str, key: str | bytes) -> float | None:
        """Seconds until the item expires; None when the item is missing or expired."""
        return self._store.ttl_remaining(cache_name, key.encode() if isinstance(key, str) else key)

    def published(self, cache_name: str, topic_name: str) -> list[bytes]:
        """Every message the topic accepted, in order (text messages as UTF-8)."""
        return self._store.published(cache_name, topic_name)

    @property
    def calls(self) -> Counter[str]:
        """Calls received per gRPC method name ("Set", "Publish", ...), each SDK retry counted; a snapshot."""
        return self._stats.calls()

    @property
    def injected_faults(self) -> Counter[str]:
        """Calls per method that a fault rule acted on (latency-only rules included); a snapshot."""
        return self._stats.injected()

    def add_fault(self, rule: FaultRule) -> FaultRule:
        """Add a fault rule after the existing ones; returns it."""
        self._faults.add([rule])
        return rule

    def add_faults(self, rules: Iterable[FaultRule]) -> None:
        self._faults.add(rules)

    def clear_faults(self) -> None:
        self._faults.clear()

    def hold_writes(
        self,
        key: str | None = None,
        *,
        value: bytes | str | None = None,
        method: str | None = None,
        times: int | None = 1,
    ) -> WriteHold:
        """Hold matching writes before they are applied until the returned hold is released (or leaves its `with`).

        `key` is the cache key, or for Publish the JSON message's "key"; `value` the exact Set body or Publish
        message (a Delete never matches a value); `method` one of "Set", "SetIfNotExists", "Delete", "Publish";
        None matches any. `times` calls are caught (None: every match until released); others pass straight
        through. `reset()` and `stop()` release every hold. See `holds.py` for the timing.
        """
        return self._holds.add(key, value, method, times)

    def reset(self) -> None:
        """Release held writes; forget data, messages, counters and faults; re-seed; back to the constructor's caches
        (empty) and token."""
        self._holds.release_all()
        self._store.reset(self._initial_caches)
        self._faults.clear(reseed=True)
        self._stats.clear()
        self._token_check.clear()
        self._token_check.token = self._initial_auth_token
