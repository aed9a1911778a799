"""How the mapping reads a handler's response: Lambda's rules for partial batch responses of stream sources.

AWS documents them in "Configuring partial batch response with DynamoDB and Lambda"
(https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html), honoured only with
``FunctionResponseTypes: [ReportBatchItemFailures]``:

- complete success: an empty or null ``batchItemFailures`` list, an empty ``EventResponse`` or a null one. An empty
  response is any empty JSON value: ``null``, ``{}``, ``[]`` or ``""`` (a Python handler returning ``[]`` or
  nothing succeeds), and an object without ``batchItemFailures``;
- complete failure: an empty-string or null ``itemIdentifier``, or an ``itemIdentifier`` under a bad key name;
- otherwise Lambda checkpoints before the lowest reported sequence number (compared as integers) and retries the
  batch from that record.

Decisions where AWS documents nothing: an identifier that is not in the batch fails it (LocalStack, which checks its
mapping against AWS, does the same); any other response that is not a JSON object (a non-empty list or string, a
number, a boolean) fails the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["InvocationOutcome", "Verdict", "judge_response"]


class InvocationOutcome(StrEnum):
    """How one invocation ended, as the mapping judges it."""

    SUCCESS = "success"
    PARTIAL_FAILURE = "partial_failure"
    FUNCTION_ERROR = "function_error"
    TIMEOUT = "timeout"
    INVALID_RESPONSE = "invalid_response"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a response; ``failed_index`` is the position of the lowest reported record."""

    outcome: InvocationOutcome
    failed_index: int | None = None
    error: str | None = None


_SUCCESS = Verdict(InvocationOutcome.SUCCESS)


def judge_response(response: Any, sequence_numbers: Sequence[str], *, report_batch_item_failures: bool) -> Verdict:
    """Read a (JSON-decoded) response to a batch whose records have ``sequence_numbers``, the way Lambda does."""
    if not report_batch_item_failures or _is_empty(response):
        return _SUCCESS
    if not isinstance(response, dict):
        return _invalid(f"the response is not a JSON object: {response!r}")
    failures = response.get("batchItemFailures")
    if _is_empty(failures):
        return _SUCCESS
    if not isinstance(failures, list):
        return _invalid(f"batchItemFailures is not a list: {failures!r}")
    positions = {number: index for index, number in enumerate(sequence_numbers)}
    identifiers: list[str] = []
    for item in failures:
        if not isinstance(item, dict) or "itemIdentifier" not in item:
            return _invalid(f"batch item failure without itemIdentifier: {item!r}")
        identifier = item["itemIdentifier"]
        if not isinstance(identifier, str) or not identifier:
            return _invalid(f"empty or null itemIdentifier: {identifier!r}")
        if identifier not in positions:
            return _invalid(f"itemIdentifier {identifier!r} is not in the batch")
        identifiers.append(identifier)
    lowest = min(identifiers, key=int)
    return Verdict(InvocationOutcome.PARTIAL_FAILURE, failed_index=positions[lowest])


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, dict | list | str) and not value)


def _invalid(reason: str) -> Verdict:
    return Verdict(InvocationOutcome.INVALID_RESPONSE, error=reason)
