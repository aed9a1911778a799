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

__all__ = ["CallFailure", "FailureKind", "classify", "error_trailer", "grpc_status"]


class FailureKind(enum.Enum):
    RETRYABLE = "retryable"  # transient: back off and try again while the invocation has time
    POISON = "poison"  # this request can never succeed: dead-letter the record
    SYSTEMIC = "systemic"  # every request will fail until someone fixes something: report, log once


@dataclass(frozen=True, slots=True)
class CallFailure:
    """A failed Momento call: its kind and a one-line cause (no secrets: SDK messages never carry the key)."""

    kind: FailureKind
    cause: str


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


def grpc_status(error: Any) -> grpc.StatusCode | None:
    """The gRPC status the service answered with, when the error came from the service."""
    try:
        return error.inner_exception.transport_details.grpc.code
    except AttributeError:
        return None


def classify(error: Any) -> CallFailure:
    """The failure kind of an SDK ``Error`` response (anything with ``error_code`` and ``message``)."""
    code = getattr(error, "error_code", MomentoErrorCode.UNKNOWN_ERROR)
    name = getattr(code, "name", str(code))
    # The SDK files both of these under BAD_REQUEST_ERROR; neither says that this one request can never succeed.
    status = grpc_status(error)
    if status is grpc.StatusCode.UNKNOWN:
        return CallFailure(FailureKind.RETRYABLE, "UNKNOWN_SERVICE_ERROR")
    if status is grpc.StatusCode.UNIMPLEMENTED:
        return CallFailure(
            FailureKind.SYSTEMIC,
            "UNIMPLEMENTED: the endpoint does not serve the Momento API: "
            "check MOMENTO_ENDPOINT / MOMENTO_LOCAL_ENDPOINT",
        )
    if code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR:
        trailer = error_trailer(error)
        if trailer in _SIZE_LIMITS:
            return CallFailure(FailureKind.POISON, f"{name} ({trailer}): the item is too large for the cache")
        return CallFailure(FailureKind.RETRYABLE, f"{name} ({trailer or 'rate limit'})")
    if code in _RETRYABLE:
        return CallFailure(FailureKind.RETRYABLE, name)
    if code in _POISON:
        return CallFailure(FailureKind.POISON, f"{name}: {getattr(error, 'message', '')}".strip())
    fix = _FIXES.get(code, "see the Momento error message")
    return CallFailure(FailureKind.SYSTEMIC, f"{name}: {fix}")
