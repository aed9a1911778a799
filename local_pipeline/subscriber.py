"""A topic subscriber on its own thread: the real Momento SDK's ``TopicClientAsync.subscribe``, messages collected.

The SDK's async clients belong to the event loop they run on, so the subscription gets a thread and a loop of its
own and the caller's code stays synchronous. The topic configuration's deadline bounds a subscription's life (the
SDK passes it as the stream's gRPC timeout, and its iterator spins once the stream has failed), so the subscriber sets
a deadline longer than any run, and sends no keepalive pings (see below) that could get the stream closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import timedelta
from types import TracebackType

from momento import CredentialProvider, TopicClientAsync, TopicConfigurations
from momento.config.transport.topic_transport_strategy import StaticTopicGrpcConfiguration, StaticTopicTransportStrategy
from momento.responses import TopicSubscribe, TopicSubscriptionItem

__all__ = ["SubscriptionError", "TopicSubscriber"]


#: Tries to open the subscription, each given ``open_timeout_seconds``: on a heavily loaded machine the first
#: stream of a process was seen to wait over ten seconds for its heartbeat, and a new attempt is cheap.
OPEN_ATTEMPTS = 3


class SubscriptionError(RuntimeError):
    """The subscription could not be opened."""


class TopicSubscriber:
    """Collects every message published to ``cache_name``/``topic_name`` while it runs, in arrival order.

    Example::

        with TopicSubscriber(server.credential_provider(), "cache", "topic") as subscriber:
            ...  # publish
            subscriber.wait_for(3, timeout_seconds=5)
            texts = subscriber.messages
    """

    def __init__(
        self,
        credential_provider: CredentialProvider,
        cache_name: str,
        topic_name: str,
        *,
        lifetime: timedelta = timedelta(hours=1),
    ) -> None:
        self._credentials = credential_provider
        self._cache_name = cache_name
        self._topic_name = topic_name
        # No keepalive pings: the SDK's default (every 5 s, even without calls) gets an idle connection closed
        # with GOAWAY "too_many_pings" by a gRPC server that keeps gRPC's default ping policy, as the local one does.
        self._configuration = TopicConfigurations.Default.latest().with_transport_strategy(
            StaticTopicTransportStrategy(
                StaticTopicGrpcConfiguration(
                    deadline=lifetime, keepalive_permit_without_calls=None, keepalive_time=None, keepalive_timeout=None
                )
            )
        )
        self._messages: list[str | bytes] = []
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._error: str | None = None
        self._open_timeout = 5.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: TopicSubscribe.SubscriptionAsync | None = None
        self._thread: threading.Thread | None = None

    @property
    def messages(self) -> list[str | bytes]:
        """A snapshot of the messages received so far (text messages as str)."""
        with self._changed:
            return list(self._messages)

    def start(self, open_timeout_seconds: float = 5.0) -> TopicSubscriber:
        """Subscribe; returns once the subscription is open (messages published from then on are received)."""
        self._open_timeout = open_timeout_seconds
        self._thread = threading.Thread(target=self._run, name="topic-subscriber", daemon=True)
        self._thread.start()
        # _run sets _ready in every case, after at most OPEN_ATTEMPTS timeouts; the margin covers a slow start.
        if not self._ready.wait(OPEN_ATTEMPTS * open_timeout_seconds + 10):
            raise SubscriptionError(f"the subscription did not open within {OPEN_ATTEMPTS * open_timeout_seconds} s")
        if self._error is not None:
            self._thread.join()
            raise SubscriptionError(self._error)
        return self

    def wait_for(self, count: int, timeout_seconds: float) -> bool:
        """Wait until at least ``count`` messages arrived; False when the timeout passed first."""
        end = time.monotonic() + timeout_seconds
        with self._changed:
            while len(self._messages) < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def stop(self) -> None:
        """Unsubscribe and end the thread; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            # The SDK turns the stream's cancellation into an Error item, which ends the reading loop.
            loop.call_soon_threadsafe(self._unsubscribe)
            thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> TopicSubscriber:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _unsubscribe(self) -> None:
        if self._subscription is not None:
            self._subscription.unsubscribe()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._receive())
        finally:
            self._ready.set()  # never leave start() waiting, whatever happened
            loop.close()

    async def _receive(self) -> None:
        client = TopicClientAsync(self._configuration, self._credentials)
        try:
            response = None
            for _ in range(OPEN_ATTEMPTS):
                try:
                    response = await asyncio.wait_for(
                        client.subscribe(self._cache_name, self._topic_name), self._open_timeout
                    )
                    break
                except TimeoutError:
                    continue
            if not isinstance(response, TopicSubscribe.SubscriptionAsync):
                reason = response or f"no heartbeat within {self._open_timeout} s, {OPEN_ATTEMPTS} times"
                self._error = f"cannot subscribe to {self._cache_name}/{self._topic_name}: {reason}"
                return
            self._subscription = response
            self._ready.set()
            # Unsubscribing cancels the gRPC call: the SDK 1.29 catches concurrent.futures' CancelledError, but
            # grpc.aio raises asyncio's, so the read ends with that exception here (or with an Error item).
            with contextlib.suppress(asyncio.CancelledError):
                async for item in response:
                    if isinstance(item, TopicSubscriptionItem.Text | TopicSubscriptionItem.Binary):
                        with self._changed:
                            self._messages.append(item.value)
                            self._changed.notify_all()
                    elif isinstance(item, TopicSubscriptionItem.Error):
                        break  # unsubscribed, or the stream ended
        finally:
            await client.close()
