"""Streams without new images: items are read from the table (BatchGetItem) and applied with the same rules.

The end-to-end cases run moto tables of every stream view type through the event-source-mapping emulator into the
real handler and the local Momento server, and compare the cache with the table.
"""

from __future__ import annotations

import json

import boto3
import pytest

from local_pipeline.event_source_mapping import MappingSettings, StreamEventSourceMapping
from stream_processor.planner import ItemRead
from stream_processor.table_reads import TableReader, TableReadError
from tests.stream_processor.records import batch, insert, keys_only

CACHE = "test-cache"


def create_table(name: str, view_type: str) -> str:
    client = boto3.client("dynamodb")
    table = client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "Location", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Location", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
    )
    return table["TableDescription"]["LatestStreamArn"]


def put(table: str, location: str, **numbers: int) -> None:
    item = {"Location": {"S": location}, **{k: {"N": str(v)} for k, v in numbers.items()}}
    boto3.client("dynamodb").put_item(TableName=table, Item=item)


def table_state(table: str) -> dict[str, dict]:
    items = boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["Location"]["S"]: {k: _plain(v) for k, v in item.items()} for item in items}


def _plain(value: dict):
    ((kind, data),) = value.items()
    return int(data) if kind == "N" else data


@pytest.mark.parametrize("view_type", ["KEYS_ONLY", "OLD_IMAGE", "NEW_IMAGE", "NEW_AND_OLD_IMAGES"])
def test_every_stream_view_type_leaves_the_cache_equal_to_the_table(view_type, handler, momento_server):
    stream_arn = create_table("weather", view_type)
    put("weather", "Seattle", MaxTemp=14)
    put("weather", "Tokyo", MaxTemp=21)
    put("weather", "Seattle", MaxTemp=15)
    put("weather", "Lima", MaxTemp=19)
    boto3.client("dynamodb").delete_item(TableName="weather", Key={"Location": {"S": "Tokyo"}})
    mapping = StreamEventSourceMapping(stream_arn, handler, MappingSettings(batch_size=3))

    report = mapping.run_until_caught_up()

    assert report.records_sent_to_on_failure_destination == 0
    cache = {key: json.loads(value) for key, value in momento_server.cache_items(CACHE).items()}
    assert cache == table_state("weather")
    published = [json.loads(m) for m in momento_server.published(CACHE, "test-topic")]
    assert [m["eventName"] for m in published if m["key"] == "Seattle"] == ["INSERT", "MODIFY"]


def test_a_keys_only_record_whose_item_is_gone_deletes_the_cache_entry(handler, momento_server):
    stream_arn = create_table("weather", "KEYS_ONLY")
    put("weather", "Oslo", MaxTemp=3)
    mapping = StreamEventSourceMapping(stream_arn, handler, MappingSettings(batch_size=10))
    mapping.run_until_caught_up()
    assert "Oslo" in momento_server.cache_items(CACHE)
    # The item changes and disappears before the next batch is read: the MODIFY finds nothing in the table.
    put("weather", "Oslo", MaxTemp=4)
    boto3.client("dynamodb").delete_item(TableName="weather", Key={"Location": {"S": "Oslo"}})

    mapping.run_until_caught_up()

    assert "Oslo" not in momento_server.cache_items(CACHE)


def test_table_reader_reads_in_chunks_of_one_hundred_and_maps_missing_items_to_none(aws):
    create_table("weather", "KEYS_ONLY")
    for index in range(150):
        put("weather", f"City{index}", MaxTemp=index)
    reads = [ItemRead(f"City{i}", "weather", {"Location": {"S": f"City{i}"}}) for i in range(160)]

    found = TableReader().read(reads)

    assert len(found) == 160
    assert found["City149"]["MaxTemp"] == {"N": "149"}
    assert [found[f"City{i}"] for i in range(150, 160)] == [None] * 10


def test_an_unreadable_table_raises_a_clear_error(aws):
    reads = [ItemRead("City1", "no-such-table", {"Location": {"S": "City1"}})]

    with pytest.raises(TableReadError, match="BatchGetItem failed: ResourceNotFoundException"):
        TableReader().read(reads)


def test_a_failed_table_read_reports_those_records_and_processes_the_rest(handler, momento_server, lambda_context):
    # The keys-only records name a table that cannot be read; the record with its own image does not need the table.
    event = batch(keys_only("INSERT", "Oslo", seq=10), insert("Lima", seq=11), keys_only("MODIFY", "Oslo", seq=12))

    response = handler(event, lambda_context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "10"}]}
    assert set(momento_server.cache_items(CACHE)) == {"Lima"}
    assert [json.loads(m)["key"] for m in momento_server.published(CACHE, "test-topic")] == ["Lima"]
