"""Momento errors to failure kinds: retry it, dead-letter the record, or report the batch and tell the operator.

The SDK returns ``X.Error`` responses with a ``MomentoErrorCode``. RESOURCE_EXHAUSTED arrives as
``LIMIT_EXCEEDED_ERROR`` for both rate limits (retry later) and size limits (will never succeed); the ``err``
trailing-metadata value tells them apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import grpc
from momento.errors import MomentoErrorCode

__all__ = ["CallFailure", "FailureKind", "MomentoTarget", "classify", "error_trailer", "grpc_details", "grpc_status"]


class FailureKind(enum.Enum):
    RETRYABLE = "retryable"  # transient: back off and try again while the invocation has time
    POISON = "poison"  # this request can never succeed: dead-letter the record
    SYSTEMIC = "systemic"  # every request will fail until someone fixes something: report, log once


@dataclass(frozen=True, slots=True)
class CallFailure:
    """A failed Momento call: its kind and a one-line cause (no secrets: SDK messages never carry the key)."""

    kind: FailureKind
    cause: str


@dataclass(frozen=True, slots=True)
class MomentoTarget:
    """What the calls are aimed at, so that a failure's cause names the thing to fix (never the API key)."""

    cache_name: str | None = None
    topic_name: str | None = None
    #: host:port the data calls go to, and the variable that sets it (None: the endpoint the API key carries)
    endpoint: str | None = None
    endpoint_variable: str | None = None
    #: where the API key comes from, e.g. "the secret 'prod/momento' named by MOMENTO_API_KEY_SECRET"
    key_source: str | None = None

    def endpoint_fix(self) -> str:
        if self.endpoint_variable:
            return f"check {self.endpoint_variable}"
        return "check the API key (its endpoint) and MOMENTO_ENDPOINT"


_RETRYABLE = frozenset(
    {
        MomentoErrorCode.TIMEOUT_ERROR,
        MomentoErrorCode.SERVER_UNAVAILABLE,
        MomentoErrorCode.INTERNAL_SERVER_ERROR,
        MomentoErrorCode.CONNECTION_ERROR,
        MomentoErrorCode.CANCELLED_ERROR,
        MomentoErrorCode.UNKNOWN_SERVICE_ERROR,
        MomentoErrorCode.UNKNOWN_ERROR,
    }
)
_POISON = frozenset({MomentoErrorCode.INVALID_ARGUMENT_ERROR, MomentoErrorCode.BAD_REQUEST_ERROR})
# Retryable failures that mean the endpoint did not answer: their cause names it.
_UNREACHABLE = frozenset(
    {MomentoErrorCode.SERVER_UNAVAILABLE, MomentoErrorCode.CONNECTION_ERROR, MomentoErrorCode.TIMEOUT_ERROR}
)
_SIZE_LIMITS = frozenset({"item_size_limit_exceeded", "request_size_limit_exceeded", "element_size_limit_exceeded"})
_FIXES = {
    MomentoErrorCode.AUTHENTICATION_ERROR: "the Momento API key is invalid or expired: update the secret named by "
    "MOMENTO_API_KEY_SECRET (and MOMENTO_ENDPOINT for v2 keys)",
    MomentoErrorCode.PERMISSION_ERROR: "the Momento API key lacks permission: give it read-write access to "
    "CACHE_NAME and publish access to TOPIC_NAME",
    MomentoErrorCode.NOT_FOUND_ERROR: "the cache does not exist: create the cache named by CACHE_NAME in this "
    "Momento region, or fix CACHE_NAME",
    MomentoErrorCode.FAILED_PRECONDITION_ERROR: "Momento refused the operation in its current state",
    MomentoErrorCode.CLIENT_RESOURCE_EXHAUSTED: "the function ran out of a client resource (memory): raise "
    "MemorySize or lower MAX_IN_FLIGHT / BatchSize",
    MomentoErrorCode.ALREADY_EXISTS_ERROR: "unexpected ALREADY_EXISTS from a data call",
}


def error_trailer(error: Any) -> str | None:
    """The ``err`` trailing-metadata value of an SDK error response, when the service sent one."""
    try:
        metadata = error.inner_exception.transport_details.grpc.metadata
    except AttributeError:
        return None
    if metadata is None:
        return None
    value = metadata.get("err")
    return value.decode() if isinstance(value, bytes) else value


def grpc_details(error: Any) -> str:
    """The status details the service (or the gRPC channel) answered with; empty when there are none."""
    try:
        details = error.inner_exception.transport_details.grpc.details
    except AttributeError:
        return ""
    return details if isinstance(details, str) else ""


def grpc_status(error: Any) -> grpc.StatusCode | None:
    """The gRPC status the service answered with, when the error came from the service."""
    try:
        return error.inner_exception.transport_details.grpc.code
    except AttributeError:
        return None


def classify(error: Any, target: MomentoTarget | None = None) -> CallFailure:
    """The failure kind of an SDK ``Error`` response (anything with ``error_code`` and ``message``).

    With a ``target``, causes name the cache, the endpoint and the variable to change.
    """
    code = getattr(error, "error_code", MomentoErrorCode.UNKNOWN_ERROR)
    name = getattr(code, "name", str(code))
    target = target or MomentoTarget()
    # The SDK files both of these under BAD_REQUEST_ERROR; neither says that this one request can never succeed.
    status = grpc_status(error)
    if status is grpc.StatusCode.UNKNOWN:
        return CallFailure(FailureKind.RETRYABLE, "UNKNOWN_SERVICE_ERROR")
    if status is grpc.StatusCode.UNIMPLEMENTED:
        if target.endpoint:
            where, fix = f" at {target.endpoint}", target.endpoint_fix()
        else:
            where, fix = "", "check MOMENTO_ENDPOINT / MOMENTO_LOCAL_ENDPOINT"
        return CallFailure(
            FailureKind.SYSTEMIC, f"UNIMPLEMENTED: the endpoint{where} does not serve the Momento API: {fix}"
        )
    if status is grpc.StatusCode.UNAVAILABLE and "connection refused" in grpc_details(error).lower():
        # Nothing listens at that address: Momento's endpoints are load-balanced and never refuse connections, so
        # this is a wrong endpoint (or a local server that is not running). Retrying until the invocation times out
        # would only delay the answer; Lambda retries the batch.
        return CallFailure(
            FailureKind.SYSTEMIC,
            f"{name}: connection refused by {target.endpoint or 'the Momento endpoint'}: no Momento server listens "
            f"there; {target.endpoint_fix()}",
        )
    if code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR:
        trailer = error_trailer(error)
        if trailer in _SIZE_LIMITS:
            return CallFailure(FailureKind.POISON, f"{name} ({trailer}): the item is too large for the cache")
        return CallFailure(FailureKind.RETRYABLE, f"{name} ({trailer or 'rate limit'})")
    if code in _RETRYABLE:
        if code in _UNREACHABLE and target.endpoint:
            return CallFailure(FailureKind.RETRYABLE, f"{name} from {target.endpoint} ({target.endpoint_fix()})")
        return CallFailure(FailureKind.RETRYABLE, name)
    if code in _POISON:
        return CallFailure(FailureKind.POISON, f"{name}: {getattr(error, 'message', '')}".strip())
    return CallFailure(FailureKind.SYSTEMIC, f"{name}: {_fix(code, target)}")


def _fix(code: MomentoErrorCode, target: MomentoTarget) -> str:
    """What to do about a systemic failure, naming the cache, topic or key source when they are known."""
    cache = f'"{target.cache_name}"' if target.cache_name else "named by CACHE_NAME"
    if code is MomentoErrorCode.NOT_FOUND_ERROR and target.cache_name:
        return (
            f"the cache {cache} does not exist: create the cache {cache} in this Momento region, "
            "or set CACHE_NAME to an existing cache"
        )
    if code is MomentoErrorCode.PERMISSION_ERROR and target.cache_name:
        topic = f' and publish access to the topic "{target.topic_name}"' if target.topic_name else ""
        return (
            f"the Momento API key lacks permission: give it read-write access to the cache {cache}{topic} "
            "(CACHE_NAME, TOPIC_NAME)"
        )
    if code is MomentoErrorCode.AUTHENTICATION_ERROR and target.key_source:
        return (
            f"the Momento API key is invalid, expired or revoked: put a valid key in {target.key_source} "
            "(and set MOMENTO_ENDPOINT for v2 keys)"
        )
    return _FIXES.get(code, "see the Momento error message")
