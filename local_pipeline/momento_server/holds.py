"""Holding chosen writes in the local Momento server until a test releases them, to force races deterministically.

A test that must put one writer's cache write between another writer's table read and its cache write (a stream
processor's set landing while a backfill's or redrive's set is in flight) holds the in-flight write::

    with server.hold_writes(key="Seattle", value=old_value) as hold:
        start_the_backfill()                  # its set of the old value blocks inside the server
        assert hold.wait_until_held(timeout=5)
        run_the_stream_processor()            # its set of the new value passes straight through
    # leaving the block released the held set: it is applied now, after the newer one

A held call blocks on its gRPC worker thread just before the write is applied (after any injected latency, and
whether or not an `apply_then_fail` fault will then fail it); release applies it, then the client gets its answer.
The client's own deadline keeps running while the call is held: hold past it and the client sees a timeout while the
write still lands on release, as a real late write would.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

Response = TypeVar("Response")

#: The data calls that change state, which a hold can catch.
HOLDABLE_METHODS = frozenset({"Set", "SetIfNotExists", "Delete", "Publish"})
#: How long `release` waits for a released call to be applied; in-memory writes take microseconds.
RELEASE_TIMEOUT_SECONDS = 10.0


class _HeldCall:
    """One caught call: released by the test, then reported applied by the server thread."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.done = threading.Event()


class WriteHold:
    """Catches matching writes and keeps them from being applied until `release()` (`LocalMomentoServer.hold_writes`).

    `key` is the cache key (for Publish, the "key" member of a JSON message), `value` the exact value (Set body,
    Publish message; a Delete has none, so a hold with a value never catches one), `method` one of
    `HOLDABLE_METHODS`; None matches any. `times` caps how many calls it catches (None: every match until released).
    Calls that do not match, or arrive after the cap or the release, pass straight through.
    """

    def __init__(
        self,
        book: HoldBook,
        key: str | None,
        value: bytes | str | None,
        method: str | None,
        times: int | None,
    ) -> None:
        if method is not None and method not in HOLDABLE_METHODS:
            raise ValueError(f"method must be one of {sorted(HOLDABLE_METHODS)} or None, got {method!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        self.key = key
        self.value = value.encode() if isinstance(value, str) else value
        self.method = method
        self.times = times
        self._book = book
        self._held: deque[_HeldCall] = deque()  # caught and not yet released, in arrival order
        self._caught = 0
        self._caught_calls: list[tuple[str, str | None]] = []
        self._released = False

    @property
    def held_count(self) -> int:
        """How many calls this hold has caught so far (released ones included)."""
        with self._book.condition:
            return self._caught

    @property
    def caught_calls(self) -> list[tuple[str, str | None]]:
        """The method and key of every call caught so far, in arrival order (a test learns which write it holds)."""
        with self._book.condition:
            return list(self._caught_calls)

    @property
    def released(self) -> bool:
        with self._book.condition:
            return self._released

    def wait_until_held(self, timeout: float = 5.0, count: int | None = None) -> bool:
        """Wait until `count` calls (default: `times`, or 1) are caught; False when `timeout` seconds pass first."""
        target = count if count is not None else (self.times or 1)
        with self._book.condition:
            return self._book.condition.wait_for(lambda: self._caught >= target, timeout)

    def release(self) -> None:
        """Stop catching; apply the held calls one at a time in arrival order, each before the next is released.

        Returns once every held call has been applied (their answers reach the clients right after), so a test
        that releases two holds in turn gets the writes applied in that order. Releasing twice does nothing.
        """
        for call in self._stop():
            call.go.set()
            if not call.done.wait(RELEASE_TIMEOUT_SECONDS):
                raise TimeoutError(f"a released write was not applied within {RELEASE_TIMEOUT_SECONDS} s")

    def __enter__(self) -> WriteHold:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()

    # --- used by HoldBook, with its lock held ---------------------------------------------------------------------

    def _catches(self, method: str, key: Callable[[], str | None], value: bytes | None) -> bool:
        if self._released or (self.times is not None and self._caught >= self.times):
            return False
        if method not in HOLDABLE_METHODS or (self.method is not None and self.method != method):
            return False
        if self.value is not None and self.value != value:
            return False
        return self.key is None or self.key == key()

    def _catch(self, method: str, key: str | None) -> _HeldCall:
        call = _HeldCall()
        self._held.append(call)
        self._caught += 1
        self._caught_calls.append((method, key))
        return call

    def _stop(self) -> list[_HeldCall]:
        with self._book.condition:
            self._released = True
            held = list(self._held)
            self._held.clear()
        return held


class HoldBook:
    """The server's active holds; the call path asks it to gate each write."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self._holds: list[WriteHold] = []

    def add(self, key: str | None, value: bytes | str | None, method: str | None, times: int | None) -> WriteHold:
        hold = WriteHold(self, key, value, method, times)
        with self.condition:
            self._holds.append(hold)
        return hold

    def gate(
        self,
        method: str,
        key: Callable[[], str | None],
        value: bytes | None,
        operation: Callable[[], Response],
    ) -> Callable[[], Response]:
        """`operation`, made to wait for its release first if a hold catches the call when it runs."""
        if method not in HOLDABLE_METHODS:
            return operation

        def gated() -> Response:
            if not self._holds:  # the common case: no lock taken
                return operation()
            call = self._catch(method, key, value)
            if call is None:
                return operation()
            call.go.wait()
            try:
                return operation()
            finally:
                call.done.set()

        return gated

    def release_all(self) -> None:
        """Release every hold (for reset and stop: no server worker stays blocked) and forget them."""
        with self.condition:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    def _catch(self, method: str, key: Callable[[], str | None], value: bytes | None) -> _HeldCall | None:
        with self.condition:
            self._holds = [hold for hold in self._holds if not hold._released]
            for hold in self._holds:
                if hold._catches(method, key, value):
                    call = hold._catch(method, key())
                    self.condition.notify_all()
                    return call
        return None
