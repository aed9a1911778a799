"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_pipeline.momento_server import LocalMomentoServer

# ---------------------------------------------------------------------------------------------------------------
# Local Momento server: one server for the whole session, reset before every test that asks for it.
# ---------------------------------------------------------------------------------------------------------------

TEST_CACHE_NAME = "test-cache"
TEST_TOPIC_NAME = "test-topic"


@pytest.fixture(scope="session")
def momento_server_session() -> Iterator[LocalMomentoServer]:
    """The session's local Momento server (started once); prefer `momento_server`, which resets it."""
    with LocalMomentoServer(caches=[TEST_CACHE_NAME]) as server:
        yield server


@pytest.fixture
def momento_server(momento_server_session: LocalMomentoServer) -> LocalMomentoServer:
    """The local Momento server, reset (no data, messages, counters or faults), with cache "test-cache"."""
    momento_server_session.reset()
    momento_server_session.create_cache(TEST_CACHE_NAME)
    return momento_server_session


@pytest.fixture
def momento_env(momento_server: LocalMomentoServer) -> dict[str, str]:
    """Environment variables that point the processor at the local Momento server."""
    return {
        "MOMENTO_LOCAL_ENDPOINT": momento_server.endpoint,
        "CACHE_NAME": TEST_CACHE_NAME,
        "TOPIC_NAME": TEST_TOPIC_NAME,
    }
