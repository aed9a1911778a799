"""The context object a handler receives, shaped like the Python runtime's, for invoking handlers locally.

Attributes and types follow the Lambda Python runtime (``awslambdaric``): ``memory_limit_in_mb`` is a string
because the runtime reads it from ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``; ``identity`` and ``client_context`` are
empty for an event source mapping's invocations. ``get_remaining_time_in_millis()`` counts down from the
invocation's deadline on an injectable clock, so time-dependent handler code can be tested deterministically.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CognitoIdentity", "LambdaContext", "function_name_from_arn", "new_log_stream_name"]


@dataclass(frozen=True)
class CognitoIdentity:
    """Empty for invocations that do not come from the mobile SDK (every stream invocation)."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass(frozen=True)
class LambdaContext:
    """One invocation's context; ``deadline`` is in epoch seconds on ``clock``."""

    aws_request_id: str
    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    log_group_name: str
    log_stream_name: str
    deadline: float
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    identity: CognitoIdentity = field(default_factory=CognitoIdentity)
    client_context: None = None
    tenant_id: str | None = None

    @classmethod
    def for_invocation(
        cls,
        *,
        function_arn: str,
        timeout_seconds: float,
        memory_size_mb: int,
        log_stream_name: str,
        clock: Callable[[], float] = time.time,
        function_version: str = "$LATEST",
    ) -> LambdaContext:
        """A context with a fresh request id whose deadline is ``timeout_seconds`` from now on ``clock``."""
        name = function_name_from_arn(function_arn)
        return cls(
            aws_request_id=str(uuid.uuid4()),
            function_name=name,
            function_version=function_version,
            invoked_function_arn=function_arn,
            memory_limit_in_mb=str(memory_size_mb),
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=log_stream_name,
            deadline=clock() + timeout_seconds,
            clock=clock,
        )

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function times out; never negative, as in the runtime."""
        return max(0, int((self.deadline - self.clock()) * 1000))


def function_name_from_arn(function_arn: str) -> str:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` -> ``<name>``."""
    parts = function_arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function" or not parts[6]:
        raise ValueError(f"not a Lambda function ARN: {function_arn!r}")
    return parts[6]


def new_log_stream_name(now: float, function_version: str = "$LATEST") -> str:
    """A log stream name in Lambda's form ``YYYY/MM/DD/[$LATEST]<32 hex>``, one per execution environment."""
    day = time.strftime("%Y/%m/%d", time.gmtime(now))
    return f"{day}/[{function_version}]{uuid.uuid4().hex}"
