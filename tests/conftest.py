"""Shared pytest fixtures: the local Momento server, moto, and the real handler in a fresh container."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from local_pipeline.lambda_context import LambdaContext, new_log_stream_name
from local_pipeline.momento_server import LocalMomentoServer
from stream_processor import app
from stream_processor.config import ConfigurationError, Settings
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.observability import logger
from tests.fakes import CurrentStdout

# ---------------------------------------------------------------------------------------------------------------
# Local Momento server: one server for the whole session, reset before every test that asks for it.
# ---------------------------------------------------------------------------------------------------------------

TEST_CACHE_NAME = "test-cache"
TEST_TOPIC_NAME = "test-topic"


@pytest.fixture(scope="session")
def momento_server_session() -> Iterator[LocalMomentoServer]:
    """The session's local Momento server (started once); prefer `momento_server`, which resets it."""
    # Faults are decided per method, key and attempt, not per value: values carry wall-clock TTLs and moto's random
    # eventIDs, so a failing example replays with the same faults.
    with LocalMomentoServer(caches=[TEST_CACHE_NAME], faults_by_value=False) as server:
        yield server


@pytest.fixture
def momento_server(momento_server_session: LocalMomentoServer) -> LocalMomentoServer:
    """The local Momento server, reset (no data, messages, counters or faults), with cache "test-cache"."""
    momento_server_session.reset()
    momento_server_session.create_cache(TEST_CACHE_NAME)
    return momento_server_session


class OpenedRuntimes(list):
    """Momento runtimes (the container's loop and SDK clients) a test opened; the fixture closes them after it."""

    def open(self, settings: Settings) -> MomentoRuntime:
        runtime = MomentoRuntime.from_settings(settings)
        self.append(runtime)
        return runtime


@pytest.fixture
def runtimes() -> Iterator[OpenedRuntimes]:
    opened = OpenedRuntimes()
    yield opened
    for runtime in opened:
        runtime.close()


@pytest.fixture
def momento_env(momento_server: LocalMomentoServer) -> dict[str, str]:
    """Environment variables that point the processor at the local Momento server."""
    return {
        "MOMENTO_LOCAL_ENDPOINT": momento_server.endpoint,
        "CACHE_NAME": TEST_CACHE_NAME,
        "TOPIC_NAME": TEST_TOPIC_NAME,
    }


# ---------------------------------------------------------------------------------------------------------------
# AWS through moto, and the real handler configured against the local Momento server.
# ---------------------------------------------------------------------------------------------------------------

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stream-processor"


@pytest.fixture
def aws(monkeypatch):
    """moto for every AWS API, with fake credentials and a region."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


class DeadLetterQueue:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sqs = boto3.client("sqs")

    def bodies(self) -> list[dict]:
        found = []
        while True:
            response = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=300)
            if not response.get("Messages"):
                return found
            found.extend(json.loads(message["Body"]) for message in response["Messages"])


@pytest.fixture
def dead_letter_queue(aws) -> DeadLetterQueue:
    return DeadLetterQueue(boto3.client("sqs").create_queue(QueueName="stream-processor-dlq")["QueueUrl"])


@pytest.fixture
def handler_env(monkeypatch, momento_env, dead_letter_queue, capsys):
    """A factory: the handler in a fresh container with the test environment plus overrides."""
    built = []

    def configure(**overrides: str):
        for name, value in {**momento_env, "DLQ_URL": dead_letter_queue.url, **overrides}.items():
            monkeypatch.setenv(name, value)
        app.processor.cache_clear()
        # Powertools binds its handler to the stdout of import time; make it follow the test's captured stdout.
        logger.registered_handler.stream = CurrentStdout()
        built.append(True)
        return app.handler

    yield configure
    if built:
        with contextlib.suppress(ConfigurationError):  # a processor that never started has nothing to close
            app.processor().momento.close()
        app.processor.cache_clear()


@pytest.fixture
def handler(handler_env):
    return handler_env()


@pytest.fixture
def lambda_context():
    def make(timeout_seconds: float = 60.0) -> LambdaContext:
        return LambdaContext.for_invocation(
            function_arn=FUNCTION_ARN,
            timeout_seconds=timeout_seconds,
            memory_size_mb=256,
            log_stream_name=new_log_stream_name(time.time()),
        )

    return make
