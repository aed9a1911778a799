"""The dead-letter queue of a local run, read without draining it: what each message stands for.

Two kinds of message land there: Lambda's on-failure records (metadata only: a range of the stream whose retries ran
out) and the function's poison records (the whole record and a reason). Reading makes every message visible again
at once, so the redrive (or the user) can still read them after the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from local_pipeline.run_result import DeadLetter, StreamChange

__all__ = ["dead_letters", "peek_bodies"]


def peek_bodies(sqs: Any, queue_url: str) -> list[str]:
    """Every message body in the queue, leaving each message in it and visible again."""
    received: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        messages = response.get("Messages") or []
        if not messages:
            break
        received.extend(messages)
    for message in received:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return [message["Body"] for message in received]


def dead_letters(
    sqs: Any, queue_url: str, changes: Mapping[str, StreamChange], key_of: Callable[[Mapping[str, Any]], str | None]
) -> list[DeadLetter]:
    """The queue's messages in stream order; ``key_of`` reads a poison record's key from its ``Keys``."""
    letters = [_dead_letter(body, changes, key_of) for body in peek_bodies(sqs, queue_url)]
    # SQS gives no order, and poison records are sent as the handler's keys finish: sort for a stable report.
    return sorted(letters, key=lambda letter: (letter.first_sequence_number, letter.kind, letter.reason))


def _dead_letter(
    body: str, changes: Mapping[str, StreamChange], key_of: Callable[[Mapping[str, Any]], str | None]
) -> DeadLetter:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return DeadLetter("unknown", body[:80], (), ())
    info = document.get("DDBStreamBatchInfo")
    if isinstance(info, dict):
        first, last = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        numbers = tuple(sorted((number for number in changes if first <= int(number) <= last), key=int))
        context = document.get("requestContext", {})
        return DeadLetter(
            "on-failure",
            str(context.get("condition")),
            numbers,
            tuple(sorted({changes[number].key for number in numbers})),
            invocations=context.get("approximateInvokeCount"),
        )
    if document.get("kind") == "poison-record":
        record = document.get("record") or {}
        stream = record.get("dynamodb", {}) if isinstance(record, dict) else {}
        key = key_of(stream.get("Keys") or {})
        number = stream.get("SequenceNumber")
        return DeadLetter(
            "poison-record", str(document.get("reason")), (number,) if number else (), (key,) if key else ()
        )
    return DeadLetter("unknown", body[:80], (), ())
