"""Topic operations per change, counted at a local Momento server with subscribers attached.

Momento bills and limits topics by operations: every publish is one, and every delivery of a message to every
subscriber is one more. The same batch is processed by the handler in its default mode, by the raw SDK emulating the
packed mode, and by the handler with ``TOPIC_PACKING=on``; for each, the server counts the ``Publish`` calls it
received and the subscribers count the messages delivered to them, then decode them (``change_feed``) to check that
every change arrived. A packed run in which the handler still published one message per change shows that it does
not pack yet; its figures are then left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.environment import BENCH_CACHE, BENCH_TOPIC, handler_environment
from benchmarks.raw_sdk import RawClients, key_calls, sets_and_packs
from benchmarks.throughput import ThroughputBench
from benchmarks.workload import TYPICAL_ITEMS, BatchShape, stream_batch

__all__ = ["TopicOperationCount", "TopicOperations", "count_topic_operations"]


@dataclass(frozen=True)
class TopicOperationCount:
    """What one batch cost in topic operations: publishes received by the server, deliveries to the subscribers."""

    label: str
    changes: int
    subscribers: int
    publishes: int
    deliveries: int
    changes_received: int  # distinct changes every subscriber decoded (the smallest count among them)

    @property
    def operations(self) -> int:
        return self.publishes + self.deliveries

    @property
    def per_change(self) -> float:
        return self.operations / self.changes

    @property
    def changes_per_message(self) -> float:
        return self.changes / self.publishes if self.publishes else 0.0


@dataclass
class TopicOperations:
    """The counts of a run, and whether the handler packs (None until a packed run was tried)."""

    counts: list[TopicOperationCount]
    handler_packs: bool

    def count(self, label: str, subscribers: int) -> TopicOperationCount | None:
        matches = (count for count in self.counts if count.label == label and count.subscribers == subscribers)
        return next(matches, None)

    @property
    def subscriber_counts(self) -> list[int]:
        return sorted({count.subscribers for count in self.counts})


DEFAULT = "handler, default mode"
RAW_PACKED = "raw SDK, packed topic messages (emulated)"
HANDLER_PACKED = "handler, TOPIC_PACKING=on"


def count_topic_operations(
    bench: ThroughputBench,
    *,
    changes: int = 1_000,
    subscribers: Sequence[int] = (1, 2),
    timeout_seconds: float = 60.0,
) -> TopicOperations:
    """Run the batch three ways against a fresh in-process server, with each number of subscribers; count each."""
    from local_pipeline.momento_server import LocalMomentoServer
    from local_pipeline.subscriber import TopicSubscriber
    from stream_processor.app import StreamProcessor
    from stream_processor.config import load_settings

    event = stream_batch(BatchShape(changes, key_prefix="ops", **TYPICAL_ITEMS))
    counts, handler_packs = [], False
    with LocalMomentoServer(caches=[BENCH_CACHE]) as server:
        environment = handler_environment(server.endpoint, max_in_flight=bench.max_in_flight, base={})
        default = StreamProcessor.from_environment(environment)
        # The same container's clients and loop (gRPC's poller must not outlive a second loop closed under it).
        packed_settings = load_settings({**environment, "TOPIC_PACKING": "on"})
        packed = StreamProcessor(packed_settings, default.momento, None, default.table_reader)
        raw = RawClients(default.momento.cache, default.momento.topics, BENCH_CACHE, BENCH_TOPIC)
        calls = key_calls(event, default.rules)
        listeners: list[TopicSubscriber] = []

        def emulate_packing() -> None:
            max_bytes = default.settings.topic_max_bytes
            _all_published(default.momento.run(sets_and_packs(calls, raw, bench.max_in_flight, max_bytes)))

        try:
            for listening in sorted(subscribers):
                while len(listeners) < listening:
                    listeners.append(TopicSubscriber(server.credential_provider(), BENCH_CACHE, BENCH_TOPIC).start())
                counter = _Counter(server, listeners, changes, timeout_seconds)
                with bench.using(default):
                    counts.append(counter.count(DEFAULT, lambda: bench.run_handler(event)))
                counts.append(counter.count(RAW_PACKED, emulate_packing))
                with bench.using(packed):
                    handler_packed = counter.count(HANDLER_PACKED, lambda: bench.run_handler(event))
                handler_packs = handler_packed.publishes < changes
                if handler_packs:
                    counts.append(handler_packed)
        finally:
            for listener in listeners:
                listener.stop()
            default.momento.close()
    return TopicOperations(counts, handler_packs)


class _Counter:
    """Counts one run: the server's Publish calls and each subscriber's deliveries, decoded and checked."""

    def __init__(self, server: Any, listeners: list[Any], changes: int, timeout_seconds: float) -> None:
        self.server, self.listeners, self.changes, self.timeout = server, listeners, changes, timeout_seconds

    def count(self, label: str, work: Callable[[], object]) -> TopicOperationCount:
        publishes_before = self.server.calls["Publish"]
        received_before = [len(listener.messages) for listener in self.listeners]
        work()
        publishes = self.server.calls["Publish"] - publishes_before
        received = []
        for listener, before in zip(self.listeners, received_before, strict=True):
            if not listener.wait_for(before + publishes, self.timeout):
                raise RuntimeError(f"{label}: a subscriber did not receive all {publishes} topic messages")
            received.append(listener.messages[before:])
        count = TopicOperationCount(
            label,
            self.changes,
            len(self.listeners),
            publishes,
            sum(len(messages) for messages in received),
            min(_distinct_changes(messages) for messages in received),
        )
        if count.changes_received != self.changes:
            raise RuntimeError(f"{label}: subscribers decoded {count.changes_received} of {self.changes} changes")
        return count


def _all_published(failed: int) -> None:
    if failed:
        raise RuntimeError(f"{failed} raw SDK calls failed")


def _distinct_changes(messages: list[str | bytes]) -> int:
    from stream_processor.change_feed import decode_topic_message

    return len({change["eventID"] for message in messages for change in decode_topic_message(message)})
