"""The settings the CPU study compares: SDK client settings (each a set of raw-SDK clients on the handler's event
loop), and two of the handler's own choices undone for a block (the stub-reuse patch, the collector threshold).

- ``stub reuse``: Configurations.Lambda with the handler's stub-reuse patch applied;
- ``never retry``: a public ``RetryStrategy`` that never retries; ``no retry``: no retry strategy at all, as the
  handler's cache client (``without_sdk_retries``: no retry interceptor in the channel);
- ``keepalive``: Configurations.InRegion.Default (keepalive pings on); ``no topic keepalive``: the topic client
  without its keepalive pings;
- ``as the handler``: the handler's own cache client settings (no SDK retry strategy, stub reuse).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from momento import Configurations, TopicConfigurations
from momento.config.transport.topic_transport_strategy import StaticTopicGrpcConfiguration, StaticTopicTransportStrategy
from momento.retry import RetryableProps, RetryStrategy

from benchmarks.raw_sdk import RawClients

__all__ = [
    "NeverRetry",
    "SettingClients",
    "default_young_threshold",
    "sdk_setting_clients",
    "stubs_built_per_call",
]


class NeverRetry(RetryStrategy):
    """A public ``RetryStrategy`` that never retries (the project retries itself, with backoff)."""

    def determine_when_to_retry(self, props: RetryableProps) -> float | None:
        return None


@dataclasses.dataclass(frozen=True)
class SettingClients:
    """Raw-SDK clients per setting, and the settings on which the stub-reuse patch took (it needs the SDK's
    internals as the handler knows them)."""

    clients: dict[str, RawClients]
    reusing_stubs: frozenset[str]


def sdk_setting_clients(build: Callable[[Any, Any], RawClients]) -> SettingClients:
    """Clients for every setting compared; ``build(cache configuration, topic configuration)`` opens a pair."""
    from stream_processor.momento_clients import _reuse_cache_stubs, without_sdk_retries

    lambda_configuration = Configurations.Lambda.latest()
    topics = TopicConfigurations.Default.latest()
    no_topic_keepalive = topics.with_transport_strategy(
        StaticTopicTransportStrategy(
            StaticTopicGrpcConfiguration(
                deadline=timedelta(seconds=5),
                keepalive_permit_without_calls=None,
                keepalive_time=None,
                keepalive_timeout=None,
            )
        )
    )
    clients = {
        "stub reuse": build(lambda_configuration, topics),
        "never retry": build(lambda_configuration.with_retry_strategy(NeverRetry()), topics),
        "no retry": build(without_sdk_retries(lambda_configuration), topics),
        "keepalive": build(Configurations.InRegion.Default.latest(), topics),
        "no topic keepalive": build(lambda_configuration, no_topic_keepalive),
        "as the handler": build(without_sdk_retries(lambda_configuration), topics),
    }
    reusing = frozenset(name for name in ("stub reuse", "as the handler") if _reuse_cache_stubs(clients[name].cache))
    return SettingClients(clients, reusing)


@contextlib.contextmanager
def default_young_threshold() -> Iterator[None]:
    """CPython's default young-generation threshold for the block (``gc_settings`` raises it at start-up)."""
    shipped = gc.get_threshold()
    gc.set_threshold(700, *shipped[1:])
    try:
        yield
    finally:
        gc.set_threshold(*shipped)


@contextlib.contextmanager
def stubs_built_per_call(cache: Any) -> Iterator[None]:
    """Undo the stub-reuse patch for the block: each data channel builds a stub per call again (the SDK's own)."""
    managers = [client._grpc_manager for client in cache._data_clients]
    patched = {manager: vars(manager).pop("async_stub") for manager in managers if "async_stub" in vars(manager)}
    try:
        yield
    finally:
        for manager, stub in patched.items():
            manager.async_stub = stub
