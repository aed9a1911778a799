"""Poison records to the SQS dead-letter queue (moto): body format, batching, and failures handed back."""

from __future__ import annotations

import boto3

from stream_processor.dead_letters import POISON_KIND, DeadLetterQueue
from stream_processor.planner import PoisonRecord
from tests.stream_processor.records import insert


def poison(seq: int, size: int = 0) -> PoisonRecord:
    record = insert(f"City{seq}", seq=seq, Notes="x" * size)
    return PoisonRecord(str(seq), f"reason {seq}", record)


def test_every_poison_record_arrives_with_its_reason_and_full_record(dead_letter_queue):
    records = [poison(seq) for seq in range(1, 24)]  # more than one SendMessageBatch

    unsent, errors = DeadLetterQueue(dead_letter_queue.url).send(records)

    assert (unsent, errors) == ([], [])
    bodies = sorted(dead_letter_queue.bodies(), key=lambda b: int(b["record"]["dynamodb"]["SequenceNumber"]))
    assert [b["kind"] for b in bodies] == [POISON_KIND] * 23
    assert [b["reason"] for b in bodies] == [f"reason {seq}" for seq in range(1, 24)]
    assert [b["record"] for b in bodies] == [p.record for p in records]


def test_large_records_are_split_across_batches_within_the_payload_limit(dead_letter_queue):
    records = [poison(seq, size=100_000) for seq in range(1, 6)]  # ~100 KB each: 2 per batch

    unsent, _ = DeadLetterQueue(dead_letter_queue.url).send(records)

    assert unsent == []
    assert len(dead_letter_queue.bodies()) == 5


def test_a_failed_send_hands_every_record_back_with_the_cause(dead_letter_queue):
    queue = DeadLetterQueue(dead_letter_queue.url.replace("stream-processor-dlq", "no-such-queue"))

    unsent, errors = queue.send([poison(1), poison(2)])

    assert [p.sequence_number for p in unsent] == ["1", "2"]
    assert len(errors) == 1 and "NonExistentQueue" in errors[0]


def test_partial_batch_failures_are_handed_back(dead_letter_queue):
    class HalfFailingSqs:
        def send_message_batch(self, QueueUrl, Entries):
            real = boto3.client("sqs").send_message_batch(QueueUrl=QueueUrl, Entries=Entries[:1])
            failed = [{"Id": e["Id"], "Code": "InternalError", "Message": "try again"} for e in Entries[1:]]
            return {"Successful": real["Successful"], "Failed": failed}

    queue = DeadLetterQueue(dead_letter_queue.url, client_factory=HalfFailingSqs)

    unsent, errors = queue.send([poison(1), poison(2), poison(3)])

    assert [p.sequence_number for p in unsent] == ["2", "3"]
    assert errors == ["InternalError: try again"] * 2
    assert [b["reason"] for b in dead_letter_queue.bodies()] == ["reason 1"]
