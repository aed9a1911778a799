"""Key rotation: a secret rotated between invocations reaches a warm container without a restart.

End to end: the real handler with MOMENTO_API_KEY_SECRET (a moto secret) and MOMENTO_LOCAL_ENDPOINT, the local server
requiring the current key as its token (as Momento does), the real SDK over gRPC.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from stream_processor import app
from stream_processor.config import PLACEHOLDER_API_KEY, ConfigurationError, MomentoConnection
from stream_processor.momento_clients import MomentoRuntime
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.stream_processor.records import batch, insert

SECRET = "momento/api-key"


@pytest.fixture
def secrets(aws):
    parameters.clear_caches()  # Powertools caches secrets per process: no value from another test
    yield boto3.client("secretsmanager")
    parameters.clear_caches()


@pytest.fixture
def rotating(momento_server, secrets):
    """The key "key-1" in the secret and required by the server; ``rotate(new)`` changes both."""
    secrets.create_secret(Name=SECRET, SecretString="key-1")
    momento_server.require_auth_token("key-1")

    def rotate(new_key: str, *, secret: bool = True, server: bool = True) -> None:
        if secret:
            secrets.put_secret_value(SecretId=SECRET, SecretString=new_key)
        if server:
            momento_server.require_auth_token(new_key)

    return rotate


def many_keys(start: int, count: int = 100) -> dict:
    # 100 distinct keys: 64 calls in flight at once, all refused together after a rotation
    return batch(*(insert(f"City{start + i}", seq=start + i) for i in range(count)))


def error_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("level") == "ERROR"]


def test_a_rotated_secret_reaches_the_warm_container_with_one_read(
    handler_env, momento_server, rotating, lambda_context, capsys
):
    handler = handler_env(MOMENTO_API_KEY_SECRET=SECRET)
    assert handler(many_keys(1000, 3), lambda_context()) == {"batchItemFailures": []}
    runtime = app.processor().momento
    first_clients = runtime.cache

    rotating("key-2")
    response = handler(many_keys(2000), lambda_context())

    assert response == {"batchItemFailures": []}
    assert len(momento_server.cache_items(TEST_CACHE_NAME)) == 103
    assert (runtime.key_reads, runtime.key_changes) == (1, 1)  # 64 refused calls, one re-read
    assert momento_server.unauthenticated_calls["Set"] >= 1
    assert runtime.cache is not first_clients
    assert runtime._retired == []  # the old clients are closed once their last call returned
    assert error_lines(capsys) == []


def test_a_key_the_secret_still_holds_is_systemic_and_read_once_per_period(
    handler_env, momento_server, rotating, lambda_context, capsys
):
    handler = handler_env(MOMENTO_API_KEY_SECRET=SECRET)
    assert handler(many_keys(1000, 1), lambda_context()) == {"batchItemFailures": []}
    runtime = app.processor().momento

    rotating("key-2", secret=False)  # Momento refuses key-1, the secret was not updated yet
    response = handler(many_keys(2000), lambda_context())

    assert {item["itemIdentifier"] for item in response["batchItemFailures"]} == {str(2000 + i) for i in range(100)}
    assert (runtime.key_reads, runtime.key_changes) == (1, 0)
    [error] = error_lines(capsys)
    assert "AUTHENTICATION_ERROR" in error["cause"] and f"secret '{SECRET}'" in error["cause"]
    assert "key-1" not in json.dumps(error)

    handler(many_keys(3000, 5), lambda_context())
    assert runtime.key_reads == 1  # within key_recheck_seconds: no new read

    rotating("key-2", server=False)  # the operator updates the secret
    runtime.key_recheck_seconds = 0
    assert handler(many_keys(4000, 5), lambda_context()) == {"batchItemFailures": []}
    assert (runtime.key_reads, runtime.key_changes) == (2, 1)


def test_a_secret_reset_to_the_placeholder_is_named_in_the_systemic_cause(
    handler_env, momento_server, rotating, lambda_context, capsys
):
    handler = handler_env(MOMENTO_API_KEY_SECRET=SECRET)
    assert handler(many_keys(1000, 1), lambda_context()) == {"batchItemFailures": []}

    rotating(PLACEHOLDER_API_KEY, server=False)
    momento_server.require_auth_token("key-2")
    response = handler(many_keys(2000, 2), lambda_context())

    assert len(response["batchItemFailures"]) == 2
    [error] = error_lines(capsys)
    assert "put-secret-value --secret-id momento/api-key" in error["cause"]


@pytest.mark.parametrize("stored", [{"SecretString": PLACEHOLDER_API_KEY}, {"SecretString": "  "}, {}])
@pytest.mark.filterwarnings("ignore:No application metrics")  # start-up fails before any metric
def test_a_secret_without_a_key_yet_stops_start_up_with_the_command_that_puts_it_in(
    handler_env, secrets, lambda_context, stored
):
    secrets.create_secret(Name=SECRET, **stored)
    handler = handler_env(MOMENTO_API_KEY_SECRET=SECRET)

    with pytest.raises(ConfigurationError) as raised:
        handler(many_keys(1, 1), lambda_context())

    message = str(raised.value)
    assert message.startswith(f"MOMENTO_API_KEY_SECRET: secret '{SECRET}' holds no Momento API key yet")
    assert f"aws secretsmanager put-secret-value --secret-id {SECRET} --secret-string <your-api-key>" in message


def test_the_runtime_of_every_job_renews_its_key_and_concurrent_failures_read_once(momento_server, rotating):
    # The redrive and the backfill use the same runtime: they get the rotation too.
    runtime = MomentoRuntime(
        MomentoConnection(api_key_secret=SECRET, local_host=momento_server.host, local_port=momento_server.port),
        TEST_CACHE_NAME,
        TEST_TOPIC_NAME,
        timedelta(minutes=5),
    )
    try:
        assert runtime.run(runtime.set("before", b"v", 60_000)) is None
        rotating("key-2")

        async def together() -> list:
            return await asyncio.gather(
                *(runtime.set(f"k{i}", b"v", 60_000) for i in range(50)), runtime.publish(b'{"key":"k"}')
            )

        assert runtime.run(together()) == [None] * 51
        assert (runtime.key_reads, runtime.key_changes) == (1, 1)
        assert momento_server.published(TEST_CACHE_NAME, TEST_TOPIC_NAME) == [b'{"key":"k"}']
    finally:
        runtime.close()
