"""The dead-letter queue: poison records go to SQS with their reason and the full original record.

Message body: ``{"kind": "poison-record", "reason": ..., "record": ...}``. A record whose send fails is handed back
so the handler reports it to Lambda instead: a poison record is only ever "handled" once it is in the queue.

The body is always valid UTF-8 JSON that SQS accepts, whatever the record holds: characters that have no UTF-8 form
(lone surrogates) or that SQS refuses (U+FFFE, U+FFFF) are written as JSON ``\\uXXXX`` escapes, which ``json.loads``
(the redrive, an operator's tools) reads back to the very same record.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stream_processor.planner import PoisonRecord

__all__ = ["POISON_KIND", "DeadLetterQueue", "poison_message_body"]

POISON_KIND = "poison-record"
_BATCH_ENTRIES = 10  # SendMessageBatch limit
_BATCH_BYTES = 256 * 1024  # conservative SendMessageBatch payload limit
# Characters json.dumps(ensure_ascii=False) writes as they are but UTF-8 (surrogates) or SQS (U+FFFE/U+FFFF) cannot
# carry; JSON control characters are already escaped by json.dumps.
_UNSENDABLE = re.compile("[\ud800-\udfff\ufffe\uffff]")


def poison_message_body(poison: PoisonRecord) -> str:
    """The JSON body of a poison record's dead-letter message (valid UTF-8 JSON for any record)."""
    body = {"kind": POISON_KIND, "reason": poison.reason, "record": poison.record}
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except (ValueError, RecursionError):
        # Deeper than the interpreter's recursion allows here, or values JSON has no text for (NaN, integers of
        # more than 4,300 digits): impossible in an event Lambda parsed, possible in a hand-made one.
        text = _json_text(body)
    return _UNSENDABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _json_text(value: Any) -> str:
    """Compact JSON text of nested maps and lists of any depth, without recursion; non-JSON numbers become strings."""
    out: list[str] = []
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _Token):
            out.append(item.text)
        elif isinstance(item, Mapping):
            parts: list[Any] = [_Token("{")]
            for index, (name, member) in enumerate(item.items()):
                parts += [_Token(("," if index else "") + _string(str(name)) + ":"), member]
            pending.extend(reversed([*parts, _Token("}")]))
        elif isinstance(item, (list, tuple)):
            parts = [_Token("[")]
            for index, member in enumerate(item):
                parts += [_Token(","), member] if index else [member]
            pending.extend(reversed([*parts, _Token("]")]))
        else:
            out.append(_scalar(item))
    return "".join(out)


class _Token:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, (bool, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than int-to-text conversion allows: hexadecimal text has no limit
            return _string(f"{value:#x}")
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return _string(str(value))


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class DeadLetterQueue:
    """Sends poison records to the SQS queue at ``queue_url`` (the boto3 client is created on first use)."""

    def __init__(self, queue_url: str, client_factory: Callable[[], Any] | None = None) -> None:
        self.queue_url = queue_url
        self._client_factory = client_factory or _sqs_client
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def send(self, poison: Sequence[PoisonRecord]) -> tuple[list[PoisonRecord], list[str]]:
        """Send every poison record; return the ones that could not be sent and one error text per failure cause."""
        unsent: list[PoisonRecord] = []
        errors: list[str] = []
        for batch in _batches([(p, poison_message_body(p)) for p in poison]):
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": body,
                    "MessageAttributes": {"kind": {"DataType": "String", "StringValue": POISON_KIND}},
                }
                for index, (_, body) in enumerate(batch)
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as error:
                unsent.extend(p for p, _ in batch)
                errors.append(f"{type(error).__name__}: {error}")
                continue
            for failed in response.get("Failed", []):
                unsent.append(batch[int(failed["Id"])][0])
                errors.append(f"{failed.get('Code')}: {failed.get('Message')}")
        return unsent, errors


def _batches(items: list[tuple[PoisonRecord, str]]):
    batch: list[tuple[PoisonRecord, str]] = []
    size = 0
    for item in items:
        item_size = len(item[1].encode("utf-8"))
        if batch and (len(batch) == _BATCH_ENTRIES or size + item_size > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def _sqs_client():
    import boto3  # imported on first poison record: keeps boto3 off the cold-start path

    return boto3.client("sqs")
