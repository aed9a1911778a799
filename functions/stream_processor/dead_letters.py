"""The dead-letter queue: poison records go to SQS with their reason and the full original record.

Message body: ``{"kind": "poison-record", "reason": ..., "record": ...}``. A record whose send fails is handed back
so the handler reports it to Lambda instead: a poison record is only ever "handled" once it is in the queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from stream_processor.planner import PoisonRecord

__all__ = ["POISON_KIND", "DeadLetterQueue", "poison_message_body"]

POISON_KIND = "poison-record"
_BATCH_ENTRIES = 10  # SendMessageBatch limit
_BATCH_BYTES = 256 * 1024  # conservative SendMessageBatch payload limit


def poison_message_body(poison: PoisonRecord) -> str:
    """The JSON body of a poison record's dead-letter message."""
    return json.dumps(
        {"kind": POISON_KIND, "reason": poison.reason, "record": poison.record},
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )


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
