"""Credentials and the container's clients: the secret path (moto Secrets Manager), clear errors, no key leaks."""

from __future__ import annotations

from datetime import timedelta

import boto3
import grpc
import jwt
import pytest

from local_pipeline.momento_server import FaultRule
from stream_processor.config import PLACEHOLDER_API_KEY, ConfigurationError, MomentoConnection, load_settings
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.momento_credentials import credential_provider, read_api_key
from stream_processor.momento_errors import FailureKind

V2_KEY = jwt.encode({"t": "g", "id": "sensitive-key-id"}, "test-signing-key-of-at-least-32-bytes", algorithm="HS256")
ENDPOINT = "cell-1-us-east-1-1.prod.a.momentohq.com"


def test_the_key_is_read_from_the_secret(aws):
    boto3.client("secretsmanager").create_secret(Name="momento/api-key", SecretString=V2_KEY)

    provider = credential_provider(MomentoConnection(api_key_secret="momento/api-key", endpoint=ENDPOINT))

    assert provider.get_auth_token() == V2_KEY
    assert provider.cache_endpoint.endswith(ENDPOINT)


def test_an_unreadable_secret_stops_start_up_naming_the_variable(aws):
    with pytest.raises(ConfigurationError, match=r"MOMENTO_API_KEY_SECRET: cannot read secret 'missing'"):
        credential_provider(MomentoConnection(api_key_secret="missing", endpoint=ENDPOINT))


def test_an_invalid_key_is_refused_without_echoing_it():
    leaked = "abc-123-secret-looking-value"
    with pytest.raises(ConfigurationError) as raised:
        credential_provider(MomentoConnection(api_key=leaked, endpoint=ENDPOINT))
    assert "MOMENTO_API_KEY" in str(raised.value)
    assert leaked not in str(raised.value)


def test_the_key_never_appears_in_settings_reprs():
    settings = load_settings({"CACHE_NAME": "c", "TOPIC_NAME": "t", "MOMENTO_API_KEY": V2_KEY})
    assert V2_KEY not in repr(settings) and V2_KEY not in str(settings.momento)


def test_one_runtime_serves_many_invocations_on_its_own_loop(momento_server):
    runtime = MomentoRuntime(
        MomentoConnection(local_host=momento_server.host, local_port=momento_server.port),
        "test-cache",
        "test-topic",
        timedelta(minutes=5),
    )
    try:
        for round_number in range(3):  # three "invocations": a fresh asyncio.run() each time would break the clients
            assert runtime.run(runtime.set(f"k{round_number}", b"v", 60_000)) is None
            assert runtime.run(runtime.publish(b'{"key":"k"}')) is None
        assert set(momento_server.cache_items("test-cache")) == {"k0", "k1", "k2"}
        assert momento_server.published("test-cache", "test-topic") == [b'{"key":"k"}'] * 3
    finally:
        runtime.close()
    assert runtime.loop.is_closed()


def test_the_cache_clients_reuse_one_grpc_stub_per_channel(momento_server, momento_env, runtimes):
    # A private-API optimisation: if an SDK upgrade removes what it relies on, this fails and says so.
    runtime = runtimes.open(load_settings(momento_env))

    assert runtime.reuses_stubs, "momento's _DataGrpcManager.async_stub is gone: drop _reuse_cache_stubs"
    manager = runtime.cache._data_clients[0]._grpc_manager
    assert manager.async_stub() is manager.async_stub()
    assert runtime.run(runtime.set("k", b"v", 60_000)) is None
    assert momento_server.cache_items("test-cache") == {"k": b"v"}


def test_a_refused_call_comes_back_at_once_for_the_callers_own_retries(momento_server, momento_env, runtimes):
    # Configurations.Lambda would retry UNAVAILABLE up to three more times inside the call, at once and each with the
    # whole deadline; the runtime drops that layer, so each attempt is one request and the caller's backoff decides.
    momento_server.add_fault(FaultRule(method="Set", key="k", code=grpc.StatusCode.UNAVAILABLE, times=1))
    runtime = runtimes.open(load_settings(momento_env))

    failure = runtime.run(runtime.set("k", b"v", 60_000))

    assert failure is not None and failure.kind is FailureKind.RETRYABLE
    assert momento_server.calls["Set"] == 1
    assert runtime.run(runtime.set("k", b"v", 60_000)) is None
    assert momento_server.cache_items("test-cache") == {"k": b"v"}


def test_a_local_endpoint_with_a_key_sends_it_as_the_token_over_plaintext():
    provider = credential_provider(MomentoConnection(api_key="local-token", local_host="127.0.0.1", local_port=4443))

    assert provider.get_auth_token() == "local-token"
    assert (provider.cache_endpoint, provider.port) == ("127.0.0.1", 4443)  # not 443: the SDK opens no TLS channel


def test_a_local_endpoint_without_a_key_sends_an_empty_token():
    provider = credential_provider(MomentoConnection(local_host="127.0.0.1", local_port=4443))
    assert provider.get_auth_token() == ""


def test_the_placeholder_as_the_key_itself_is_refused_naming_the_variable():
    with pytest.raises(ConfigurationError, match="MOMENTO_API_KEY holds the placeholder"):
        read_api_key(MomentoConnection(api_key=PLACEHOLDER_API_KEY, endpoint=ENDPOINT))


def test_a_fresh_read_bypasses_the_cached_secret(aws):
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="momento/rotated", SecretString="key-1")
    connection = MomentoConnection(api_key_secret="momento/rotated", local_host="127.0.0.1", local_port=4443)
    assert read_api_key(connection) == "key-1"
    secrets.put_secret_value(SecretId="momento/rotated", SecretString="key-2")

    assert read_api_key(connection) == "key-1"  # Powertools' cache
    assert read_api_key(connection, fresh=True) == "key-2"
