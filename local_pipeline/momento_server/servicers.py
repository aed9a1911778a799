"""The Momento wire protocol (cache, topic and control services) served from a `MomentoStore`, with injected faults.

Handlers are synchronous: they run on the gRPC server's thread pool (see `server.py` for why).
"""

from __future__ import annotations

import contextlib
import hmac
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc
from momento_wire_types import cacheclient_pb2 as cache_pb
from momento_wire_types import cacheclient_pb2_grpc as cache_grpc
from momento_wire_types import cachepubsub_pb2 as pubsub_pb
from momento_wire_types import cachepubsub_pb2_grpc as pubsub_grpc
from momento_wire_types import common_pb2 as common_pb
from momento_wire_types import controlclient_pb2 as control_pb
from momento_wire_types import controlclient_pb2_grpc as control_grpc

from .faults import ERR_ITEM_SIZE, WRITE_METHODS, FaultBook, message_key
from .holds import HoldBook
from .store import CacheNotFoundError, MomentoStore

Response = TypeVar("Response")

_HEARTBEAT = pubsub_pb._SubscriptionItem(heartbeat=pubsub_pb._Heartbeat())


class RpcFailure(Exception):
    """A call answered with a non-OK status, as the real service would (not an injected fault)."""

    def __init__(self, code: grpc.StatusCode, details: str, err: str | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.err = err


class CallStats:
    """How many calls each method received, and how many of them got an injected fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()

    def count_call(self, method: str) -> None:
        with self._lock:
            self._calls[method] += 1

    def count_injection(self, method: str) -> None:
        with self._lock:
            self._injected[method] += 1

    def calls(self) -> Counter[str]:
        with self._lock:
            return Counter(self._calls)

    def injected(self) -> Counter[str]:
        with self._lock:
            return Counter(self._injected)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._injected.clear()


class TokenCheck(grpc.ServerInterceptor):
    """Answers UNAUTHENTICATED, as Momento does, to a call whose ``authorization`` metadata is not the required token.

    ``token`` None accepts every call (the SDK's local credentials send an empty token); it can be changed while the
    server runs, to rotate the key under a running client.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._refused: Counter[str] = Counter()

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        token = self.token
        if token is None or handler is None:
            return handler
        sent = next((value for name, value in details.invocation_metadata or () if name == "authorization"), "")
        sent = sent.encode() if isinstance(sent, str) else sent
        if hmac.compare_digest(sent, token.encode()):
            return handler
        with self._lock:
            self._refused[details.method.rsplit("/", 1)[-1]] += 1
        return _refusing(handler)

    def refused(self) -> Counter[str]:
        """Calls refused per method name; a snapshot."""
        with self._lock:
            return Counter(self._refused)

    def clear(self) -> None:
        with self._lock:
            self._refused.clear()


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""

    def refuse(_request: object, context: grpc.ServicerContext) -> NoReturn:
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, "Invalid authorization token")

    codecs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse, **codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(refuse, **codecs)
    return grpc.unary_unary_rpc_method_handler(refuse, **codecs)


class CallRunner:
    """Runs one call: counts it, lets a fault rule have its way, then answers from the operation.

    `value` (a Set body, a Publish message) is part of the call's identity for faults and holds.
    """

    def __init__(self, faults: FaultBook, stats: CallStats, holds: HoldBook | None = None) -> None:
        self._faults = faults
        self._stats = stats
        self._holds = holds or HoldBook()

    def run(
        self,
        method: str,
        context: grpc.ServicerContext,
        key: Callable[[], str | None],
        operation: Callable[[], Response],
        value: bytes | None = None,
    ) -> Response:
        self._stats.count_call(method)
        operation = self._holds.gate(method, key, value, operation)  # a held write waits to be released
        rule = self._faults.pick(method, key, value)
        if rule is None:
            return _answer(context, operation)
        self._stats.count_injection(method)
        if rule.apply_then_fail and method in WRITE_METHODS:
            # Any real error of the operation is hidden behind the injected one, as it would be.
            with contextlib.suppress(RpcFailure, CacheNotFoundError):
                operation()
        if rule.latency_seconds:
            time.sleep(rule.latency_seconds)
        if rule.code is None:
            return _answer(context, operation)
        _abort(context, rule.code, rule.status_details, rule.err)


def _answer(context: grpc.ServicerContext, operation: Callable[[], Response]) -> Response:
    try:
        return operation()
    except CacheNotFoundError as missing:
        # The real service answers NOT_FOUND; the SDK turns it into MomentoErrorCode.NOT_FOUND_ERROR.
        _abort(context, grpc.StatusCode.NOT_FOUND, f"Cache not found: {missing.args[0]}")
    except RpcFailure as failure:
        _abort(context, failure.code, failure.details, failure.err)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str, err: str | None = None) -> NoReturn:
    if err:
        # Momento names the cause of some errors in the `err` trailer; the SDK keeps trailers on the error.
        context.set_trailing_metadata((("err", err),))
    context.abort(code, details)
    raise AssertionError("unreachable: abort raises")


def _cache_header(context: grpc.ServicerContext) -> str:
    """The cache a data call targets: the SDK sends it in the `cache` metadata header."""
    for name, value in context.invocation_metadata() or ():
        if name == "cache":
            return value if isinstance(value, str) else value.decode()
    raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "Missing the 'cache' metadata header")


def _key_text(key: bytes) -> Callable[[], str]:
    return lambda: key.decode("utf-8", "replace")


def _no_key() -> None:
    return None


class CacheServicer(cache_grpc.ScsServicer):
    """Scalar cache calls: Get, Set, SetIfNotExists, Delete; other methods answer UNIMPLEMENTED."""

    def __init__(self, store: MomentoStore, runner: CallRunner, max_item_bytes: int) -> None:
        self._store = store
        self._runner = runner
        self._max_item_bytes = max_item_bytes

    def Get(self, request: cache_pb._GetRequest, context: grpc.ServicerContext) -> cache_pb._GetResponse:
        def get() -> cache_pb._GetResponse:
            value = self._store.get(_cache_header(context), request.cache_key)
            if value is None:
                return cache_pb._GetResponse(result=cache_pb.Miss)
            return cache_pb._GetResponse(result=cache_pb.Hit, cache_body=value)

        return self._runner.run("Get", context, _key_text(request.cache_key), get)

    def Set(self, request: cache_pb._SetRequest, context: grpc.ServicerContext) -> cache_pb._SetResponse:
        def set_item() -> cache_pb._SetResponse:
            cache = _cache_header(context)
            self._check_size(cache, request.cache_key, request.cache_body)
            self._store.set(cache, request.cache_key, request.cache_body, request.ttl_milliseconds)
            return cache_pb._SetResponse(result=cache_pb.Ok)

        return self._runner.run("Set", context, _key_text(request.cache_key), set_item, request.cache_body)

    def SetIfNotExists(
        self, request: cache_pb._SetIfNotExistsRequest, context: grpc.ServicerContext
    ) -> cache_pb._SetIfNotExistsResponse:
        def set_if_not_exists() -> cache_pb._SetIfNotExistsResponse:
            cache = _cache_header(context)
            self._check_size(cache, request.cache_key, request.cache_body)
            if self._store.set_if_not_exists(cache, request.cache_key, request.cache_body, request.ttl_milliseconds):
                return cache_pb._SetIfNotExistsResponse(stored=cache_pb._SetIfNotExistsResponse._Stored())
            return cache_pb._SetIfNotExistsResponse(not_stored=cache_pb._SetIfNotExistsResponse._NotStored())

        return self._runner.run(
            "SetIfNotExists", context, _key_text(request.cache_key), set_if_not_exists, request.cache_body
        )

    def Delete(self, request: cache_pb._DeleteRequest, context: grpc.ServicerContext) -> cache_pb._DeleteResponse:
        def delete() -> cache_pb._DeleteResponse:
            self._store.delete(_cache_header(context), request.cache_key)
            return cache_pb._DeleteResponse()

        return self._runner.run("Delete", context, _key_text(request.cache_key), delete)

    def _check_size(self, cache: str, key: bytes, value: bytes) -> None:
        if not self._store.has_cache(cache):
            raise CacheNotFoundError(cache)
        size = len(key) + len(value)
        if size > self._max_item_bytes:
            raise RpcFailure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Item size limit exceeded: {size} bytes > {self._max_item_bytes} bytes",
                ERR_ITEM_SIZE,
            )


_CLOSED = object()  # put on a subscription's queue when its call ends


class TopicHub:
    """Live subscriptions, one queue each, per (cache, topic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[tuple[str, str], set[queue.SimpleQueue[object]]] = {}

    def open(self, cache: str, topic: str) -> queue.SimpleQueue[object]:
        subscription: queue.SimpleQueue[object] = queue.SimpleQueue()
        with self._lock:
            self._subscribers.setdefault((cache, topic), set()).add(subscription)
        return subscription

    def close(self, cache: str, topic: str, subscription: queue.SimpleQueue[object]) -> None:
        with self._lock:
            subscriptions = self._subscribers.get((cache, topic))
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscribers[(cache, topic)]

    def deliver(self, cache: str, topic: str, item: pubsub_pb._SubscriptionItem) -> None:
        with self._lock:
            for subscription in self._subscribers.get((cache, topic), ()):
                subscription.put(item)


class PubsubServicer(pubsub_grpc.PubsubServicer):
    """Topics: Publish appends to the topic's log and fans out; Subscribe streams a heartbeat, then new messages."""

    def __init__(self, store: MomentoStore, runner: CallRunner) -> None:
        self._store = store
        self._runner = runner
        self._hub = TopicHub()
        self._publish_lock = threading.Lock()

    def Publish(self, request: pubsub_pb._PublishRequest, context: grpc.ServicerContext) -> common_pb._Empty:
        value = request.value
        kind = value.WhichOneof("kind")
        raw = value.text.encode() if kind == "text" else value.binary

        def publish() -> common_pb._Empty:
            if kind is None:
                raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "The topic value is empty")
            with self._publish_lock:  # sequence numbers and delivery in one order
                sequence = self._store.publish(request.cache_name, request.topic, raw)
                item = pubsub_pb._TopicItem(topic_sequence_number=sequence, value=value)
                self._hub.deliver(request.cache_name, request.topic, pubsub_pb._SubscriptionItem(item=item))
            return common_pb._Empty()

        return self._runner.run("Publish", context, lambda: message_key(raw), publish, raw)

    def Subscribe(
        self, request: pubsub_pb._SubscriptionRequest, context: grpc.ServicerContext
    ) -> Iterator[pubsub_pb._SubscriptionItem]:
        cache, topic = request.cache_name, request.topic

        def subscribe() -> queue.SimpleQueue[object]:
            if not self._store.has_cache(cache):
                raise CacheNotFoundError(cache)
            return self._hub.open(cache, topic)

        subscription = self._runner.run("Subscribe", context, _no_key, subscribe)
        # Wakes the loop below when the client cancels, its deadline passes or the server stops.
        context.add_callback(lambda: subscription.put(_CLOSED))
        try:
            yield _HEARTBEAT  # the SDK's subscribe() reads one heartbeat before it hands out the subscription
            while (item := subscription.get()) is not _CLOSED:
                yield item  # type: ignore[misc]
        finally:
            self._hub.close(cache, topic, subscription)


class ControlServicer(control_grpc.ScsControlServicer):
    """Cache management: CreateCache, DeleteCache, ListCaches, FlushCache."""

    def __init__(self, store: MomentoStore, runner: CallRunner) -> None:
        self._store = store
        self._runner = runner

    def CreateCache(
        self, request: control_pb._CreateCacheRequest, context: grpc.ServicerContext
    ) -> control_pb._CreateCacheResponse:
        def create() -> control_pb._CreateCacheResponse:
            if not self._store.create_cache(request.cache_name):
                # The SDK turns ALREADY_EXISTS into CreateCache.CacheAlreadyExists.
                raise RpcFailure(grpc.StatusCode.ALREADY_EXISTS, f"Cache already exists: {request.cache_name}")
            return control_pb._CreateCacheResponse()

        return self._runner.run("CreateCache", context, _no_key, create)

    def DeleteCache(
        self, request: control_pb._DeleteCacheRequest, context: grpc.ServicerContext
    ) -> control_pb._DeleteCacheResponse:
        def delete() -> control_pb._DeleteCacheResponse:
            self._store.delete_cache(request.cache_name)
            return control_pb._DeleteCacheResponse()

        return self._runner.run("DeleteCache", context, _no_key, delete)

    def ListCaches(
        self, request: control_pb._ListCachesRequest, context: grpc.ServicerContext
    ) -> control_pb._ListCachesResponse:
        def list_caches() -> control_pb._ListCachesResponse:
            caches = [control_pb._Cache(cache_name=name) for name in self._store.cache_names()]
            return control_pb._ListCachesResponse(cache=caches)

        return self._runner.run("ListCaches", context, _no_key, list_caches)

    def FlushCache(
        self, request: control_pb._FlushCacheRequest, context: grpc.ServicerContext
    ) -> control_pb._FlushCacheResponse:
        def flush() -> control_pb._FlushCacheResponse:
            self._store.flush_cache(request.cache_name)
            return control_pb._FlushCacheResponse()

        return self._runner.run("FlushCache", context, _no_key, flush)


def add_servicers(server: grpc.Server, store: MomentoStore, runner: CallRunner, max_item_bytes: int) -> None:
    """Register the three Momento services on a gRPC server."""
    cache_grpc.add_ScsServicer_to_server(CacheServicer(store, runner, max_item_bytes), server)
    pubsub_grpc.add_PubsubServicer_to_server(PubsubServicer(store, runner), server)
    control_grpc.add_ScsControlServicer_to_server(ControlServicer(store, runner), server)
