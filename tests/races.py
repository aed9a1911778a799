"""Forcing races: an out-of-band writer's cache write held in the local Momento server while other writes happen.

``while_held`` runs a writer (a backfill, a redrive) in a thread, holds the first cache write it makes, runs
``meanwhile`` (table writes, the stream processor's invocations) and only then lets the held write land: the
interleaving that makes a blind out-of-band write leave an older value in the cache. ``resync_without_recheck`` is
that blind writer, planted to show the tests catch it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from local_pipeline.momento_server import LocalMomentoServer
from stream_processor.key_sync import KeyOutcome, KeySync, LiveKey

__all__ = ["HELD_WRITE_TIMEOUT_SECONDS", "resync_without_recheck", "while_held"]

T = TypeVar("T")
#: How long a writer may take to reach its first cache write (a thread start, a scan, a queue receive).
HELD_WRITE_TIMEOUT_SECONDS = 20.0


def while_held(
    server: LocalMomentoServer,
    writer: Callable[[], T],
    meanwhile: Callable[[list[tuple[str, str | None]]], Any],
    *,
    key: str | None = None,
    method: str | None = None,
) -> tuple[T, list[tuple[str, str | None]]]:
    """Run ``writer`` in a thread with its first matching write held; ``meanwhile(caught)`` runs while it is held.

    Returns the writer's result and the held call (method, key), or an empty list when the writer finished without
    making a matching write (``meanwhile`` then runs after it). The writer's exception is raised here.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = writer()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    hold = server.hold_writes(key, method=method, times=1)
    thread = threading.Thread(target=run, name="out-of-band-writer", daemon=True)
    try:
        thread.start()
        held = False
        waited = 0.0
        while not held and thread.is_alive() and waited < HELD_WRITE_TIMEOUT_SECONDS:
            held = hold.wait_until_held(timeout=0.02)
            waited += 0.02
        if not held and thread.is_alive():
            raise TimeoutError(f"the writer made no matching write within {HELD_WRITE_TIMEOUT_SECONDS} s")
        caught = hold.caught_calls
        if held:
            meanwhile(caught)
    finally:
        hold.release()
        thread.join(HELD_WRITE_TIMEOUT_SECONDS)
    if not held:
        meanwhile([])
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], caught


async def resync_without_recheck(self: KeySync, key: LiveKey) -> KeyOutcome:
    """The planted bug: an out-of-band write of the item as read, never checked against the table again."""
    outcome = KeyOutcome(key.cache_key)
    refused = await self._write(key.cache_key, key.cache_write(key.item), key.blame, outcome)
    if outcome.failure is not None:
        outcome.failed_change = key.blame
        return outcome
    outcome.item = key.item
    await self._publish(key.changes(key.item), refused, outcome)
    return outcome
