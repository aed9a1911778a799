"""Helpers for the event source mapping's tests: a moto table, a recording handler, a stub stream, a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from local_pipeline.event_source_mapping import MappingSettings
from local_pipeline.lambda_context import LambdaContext

REGION = "us-east-1"
TABLE_NAME = "orders"


@dataclass
class Table:
    """A moto table with a NEW_AND_OLD_IMAGES stream."""

    name: str
    stream_arn: str
    client: Any

    def put(self, key: str, **attributes: Any) -> None:
        item = {"pk": {"S": key}, **{name: _attribute(value) for name, value in attributes.items()}}
        self.client.put_item(TableName=self.name, Item=item)

    def delete(self, key: str) -> None:
        self.client.delete_item(TableName=self.name, Key={"pk": {"S": key}})

    def put_many(self, count: int) -> list[str]:
        keys = [f"k{index:02d}" for index in range(count)]
        for key in keys:
            self.put(key)
        return keys


def create_table(name: str = TABLE_NAME) -> Table:
    """A moto table (moto must be active) with partition key ``pk`` and a NEW_AND_OLD_IMAGES stream."""
    client = boto3.client("dynamodb")
    description = client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return Table(name, description["LatestStreamArn"], client)


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, int):
        return {"N": str(value)}
    return {"S": value}


def dlq_messages(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Respond = Callable[[dict[str, Any], int], Any]


@dataclass
class Recorder:
    """A handler that keeps every event and context and answers with ``respond(event, call_number)``."""

    respond: Respond = field(default=lambda event, call: None)
    events: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[LambdaContext] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any:
        self.events.append(json.loads(json.dumps(event)))
        self.contexts.append(context)
        return self.respond(event, len(self.events))

    def batches(self) -> list[list[str]]:
        return [[key_of(record) for record in event["Records"]] for event in self.events]


def key_of(record: dict[str, Any]) -> str:
    return record["dynamodb"]["Keys"]["pk"]["S"]


def sequence_of(event: dict[str, Any], key: str) -> str:
    return next(r["dynamodb"]["SequenceNumber"] for r in event["Records"] if key_of(r) == key)


def failures(*sequence_numbers: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": number} for number in sequence_numbers]}


def settings(**overrides: Any) -> MappingSettings:
    return MappingSettings(**overrides)


def stream_sequence_numbers(table: Table) -> dict[str, str]:
    """Key -> sequence number of its latest record, read straight from the stream."""
    streams = boto3.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=table.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=table.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    return {
        r["dynamodb"]["Keys"]["pk"]["S"]: r["dynamodb"]["SequenceNumber"]
        for r in streams.get_records(ShardIterator=iterator)["Records"]
    }


# Stub stream for what moto cannot produce: several shards with lineage, chosen sequence numbers and times.


@dataclass
class StubShard:
    shard_id: str
    parent_shard_id: str | None
    records: list[tuple[str, float]]  # (sequence number, creation time in epoch seconds)
    closed: bool = False


class StubStreams:
    """A DynamoDB Streams client over fixed shards; DescribeStream pages one shard at a time."""

    def __init__(self, *shards: StubShard) -> None:
        self.shards = {shard.shard_id: shard for shard in shards}

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict[str, Any]:
        ids = list(self.shards)
        index = 0 if ExclusiveStartShardId is None else ids.index(ExclusiveStartShardId) + 1
        shard = self.shards[ids[index]]
        description: dict[str, Any] = {"StreamArn": StreamArn, "Shards": [{"ShardId": shard.shard_id}]}
        if shard.parent_shard_id:
            description["Shards"][0]["ParentShardId"] = shard.parent_shard_id
        if index + 1 < len(ids):
            description["LastEvaluatedShardId"] = shard.shard_id
        return {"StreamDescription": description}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str, **kwargs: Any) -> dict:
        assert ShardIteratorType == "TRIM_HORIZON"
        return {"ShardIterator": f"{ShardId}|0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard_id, position = ShardIterator.split("|")
        shard, start = self.shards[shard_id], int(position)
        chosen = shard.records[start : start + Limit]
        end = start + len(chosen)
        response: dict[str, Any] = {"Records": [self._record(shard_id, *record) for record in chosen]}
        if not (shard.closed and end >= len(shard.records)):
            response["NextShardIterator"] = f"{shard_id}|{end}"
        return response

    @staticmethod
    def _record(shard_id: str, sequence_number: str, created: float) -> dict[str, Any]:
        return {
            "eventID": f"{shard_id}-{sequence_number}",
            "eventName": "INSERT",
            "eventVersion": "1.0",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": {
                "ApproximateCreationDateTime": datetime.fromtimestamp(created, tz=UTC),
                "Keys": {"pk": {"S": sequence_number}},
                "SequenceNumber": sequence_number,
                "SizeBytes": 20,
                "StreamViewType": "KEYS_ONLY",
            },
        }


STUB_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/stub/stream/2024-01-01T00:00:00.000"
