"""Momento SDK errors to failure kinds: retry, dead-letter (poison) or report as systemic (point 7).

The errors are the SDK's own: a gRPC ``AioRpcError`` (status, trailing metadata with the service's ``err`` value)
goes through the SDK's ``convert_error`` into the ``Error`` response a cache or topic call returns.
"""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata
from momento.errors import MomentoErrorCode, convert_error
from momento.errors.exceptions import ClientResourceExhaustedException, ConnectionException
from momento.internal.services import Service
from momento.responses import CacheDelete, CacheSet, TopicPublish

from stream_processor.momento_errors import FailureKind, MomentoTarget, classify, error_trailer

RESPONSES = {"set": (CacheSet.Error, Service.CACHE), "delete": (CacheDelete.Error, Service.CACHE)}
RESPONSES["publish"] = (TopicPublish.Error, Service.TOPICS)


def sdk_error(status: grpc.StatusCode, err: str | None = None, call: str = "set", details: str = "refused"):
    """The Error response the SDK returns for a call the service answered with this status (and ``err`` trailer)."""
    response, service = RESPONSES[call]
    trailers = Metadata(("err", err)) if err is not None else Metadata()
    rpc_error = AioRpcError(status, Metadata(), trailers, details=details)
    return response(convert_error(rpc_error, service))


CALLS = pytest.mark.parametrize("call", list(RESPONSES))


# --- retryable ---------------------------------------------------------------------------------------------------


@CALLS
@pytest.mark.parametrize(
    "status",
    [
        grpc.StatusCode.DEADLINE_EXCEEDED,  # timeout
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNKNOWN,  # the service gave no reason: nothing says this request can never succeed
    ],
)
def test_transient_service_errors_are_retried(status: grpc.StatusCode, call: str) -> None:
    assert classify(sdk_error(status, call=call)).kind is FailureKind.RETRYABLE


def test_a_failed_connection_is_retried() -> None:
    error = CacheSet.Error(ConnectionException("connection refused", Service.CACHE))
    assert error.error_code is MomentoErrorCode.CONNECTION_ERROR
    assert classify(error).kind is FailureKind.RETRYABLE


@CALLS
@pytest.mark.parametrize("err", ["operations_rate_limit_exceeded", "throughput_rate_limit_exceeded", None])
def test_rate_limits_are_retried(err: str | None, call: str) -> None:
    error = sdk_error(grpc.StatusCode.RESOURCE_EXHAUSTED, err, call=call)
    assert error.error_code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR
    assert classify(error).kind is FailureKind.RETRYABLE


# --- poison ------------------------------------------------------------------------------------------------------


@CALLS
@pytest.mark.parametrize(
    "err", ["item_size_limit_exceeded", "request_size_limit_exceeded", "element_size_limit_exceeded"]
)
def test_size_limits_are_poison_unlike_rate_limits(err: str, call: str) -> None:
    error = sdk_error(grpc.StatusCode.RESOURCE_EXHAUSTED, err, call=call)
    assert error.error_code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR  # same code as a rate limit: the trailer decides
    failure = classify(error)
    assert failure.kind is FailureKind.POISON
    assert err in failure.cause


def test_the_err_trailer_is_read_among_other_trailing_metadata() -> None:
    rpc_error = AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        Metadata(("content-type", "application/grpc")),
        Metadata(("x-request-id", "abc"), ("err", "item_size_limit_exceeded"), ("retry-after", "1")),
        details="Item size limit exceeded",
    )
    error = CacheSet.Error(convert_error(rpc_error, Service.CACHE))
    assert error_trailer(error) == "item_size_limit_exceeded"
    assert classify(error).kind is FailureKind.POISON


def test_an_invalid_argument_is_poison() -> None:
    assert classify(sdk_error(grpc.StatusCode.INVALID_ARGUMENT)).kind is FailureKind.POISON


# --- systemic ----------------------------------------------------------------------------------------------------


@CALLS
@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, "MOMENTO_API_KEY"),
        (grpc.StatusCode.PERMISSION_DENIED, "CACHE_NAME"),
        (grpc.StatusCode.NOT_FOUND, "CACHE_NAME"),  # the cache does not exist
    ],
)
def test_authentication_permission_and_missing_cache_are_systemic_with_a_fix(
    status: grpc.StatusCode, fix: str, call: str
) -> None:
    failure = classify(sdk_error(status, call=call))
    assert failure.kind is FailureKind.SYSTEMIC
    assert fix in failure.cause


def test_an_endpoint_that_does_not_serve_the_momento_api_is_systemic_not_poison() -> None:
    # UNIMPLEMENTED: the endpoint is not a Momento service (bad configuration); every record would fail alike
    assert classify(sdk_error(grpc.StatusCode.UNIMPLEMENTED)).kind is FailureKind.SYSTEMIC


def test_client_memory_exhaustion_is_systemic() -> None:
    error = CacheSet.Error(ClientResourceExhaustedException("out of memory", Service.CACHE))
    assert classify(error).kind is FailureKind.SYSTEMIC


# --- the trailer -------------------------------------------------------------------------------------------------


def test_error_trailer_is_none_without_transport_details_or_trailer() -> None:
    assert error_trailer(CacheSet.Error(ConnectionException("refused", Service.CACHE))) is None
    assert error_trailer(sdk_error(grpc.StatusCode.RESOURCE_EXHAUSTED)) is None
    assert error_trailer(object()) is None


def test_every_sdk_error_code_has_a_kind() -> None:
    # a code the table forgets must still be classified (never an exception in the executor)
    class Bare:
        def __init__(self, code: MomentoErrorCode) -> None:
            self.error_code = code
            self.message = "bare"

    for code in MomentoErrorCode:
        assert classify(Bare(code)).kind in set(FailureKind)


# --- causes that name the thing to fix ---------------------------------------------------------------------------

TARGET = MomentoTarget(
    cache_name="weather-cache",
    topic_name="weather-changes",
    endpoint="127.0.0.1:9",
    endpoint_variable="MOMENTO_LOCAL_ENDPOINT",
    key_source="the secret 'prod/momento' named by MOMENTO_API_KEY_SECRET",
)
# gRPC's own text for a closed port
REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9: "
    "Failed to connect to remote host: Connection refused"
)


@CALLS
def test_a_missing_cache_names_the_cache(call: str) -> None:
    failure = classify(sdk_error(grpc.StatusCode.NOT_FOUND, call=call), TARGET)
    assert failure.kind is FailureKind.SYSTEMIC
    assert 'create the cache "weather-cache"' in failure.cause
    assert "CACHE_NAME" in failure.cause


@CALLS
def test_a_refused_connection_is_systemic_and_names_the_endpoint_and_the_variable(call: str) -> None:
    failure = classify(sdk_error(grpc.StatusCode.UNAVAILABLE, call=call, details=REFUSED), TARGET)
    assert failure.kind is FailureKind.SYSTEMIC
    assert "connection refused by 127.0.0.1:9" in failure.cause
    assert "MOMENTO_LOCAL_ENDPOINT" in failure.cause


def test_an_unavailable_endpoint_that_does_not_refuse_is_retried_and_named() -> None:
    failure = classify(sdk_error(grpc.StatusCode.UNAVAILABLE, details="Socket closed"), TARGET)
    assert failure.kind is FailureKind.RETRYABLE
    assert failure.cause == "SERVER_UNAVAILABLE from 127.0.0.1:9 (check MOMENTO_LOCAL_ENDPOINT)"


def test_an_authentication_failure_names_where_the_key_comes_from() -> None:
    failure = classify(sdk_error(grpc.StatusCode.UNAUTHENTICATED), TARGET)
    assert failure.kind is FailureKind.SYSTEMIC
    assert "the secret 'prod/momento' named by MOMENTO_API_KEY_SECRET" in failure.cause


def test_a_permission_failure_names_the_cache_and_the_topic() -> None:
    failure = classify(sdk_error(grpc.StatusCode.PERMISSION_DENIED, call="publish"), TARGET)
    assert '"weather-cache"' in failure.cause and '"weather-changes"' in failure.cause
