"""The SDK client settings the CPU study compares: each a set of raw-SDK clients on the handler's event loop.

- ``stub reuse``: Configurations.Lambda with the handler's stub-reuse patch applied;
- ``never retry``: a public ``RetryStrategy`` that never retries; ``no retry``: no retry strategy at all, as the
  handler's cache client (``without_sdk_retries``: no retry interceptor in the channel);
- ``keepalive``: Configurations.InRegion.Default (keepalive pings on); ``no topic keepalive``: the topic client
  without its keepalive pings;
- ``as the handler``: the handler's own cache client settings (no SDK retry strategy, stub reuse).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from momento import Configurations, TopicConfigurations
from momento.config.transport.topic_transport_strategy import StaticTopicGrpcConfiguration, StaticTopicTransportStrategy
from momento.retry import RetryableProps, RetryStrategy

from benchmarks.raw_sdk import RawClients

__all__ = ["NeverRetry", "SettingClients", "sdk_setting_clients"]


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
