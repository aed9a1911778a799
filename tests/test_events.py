"""Every sample event in events/ through the real handler and the local Momento server, so the samples cannot rot.

The expected cache state and messages come from an oracle written independently of the processor: the last change
of each key decides the cache entry, every valid record is published once, poison records land in the DLQ.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.oracles import plain

EVENTS = Path(__file__).resolve().parent.parent / "events"
SAMPLES = sorted(path for path in EVENTS.glob("*.json") if path.name != "env.json")
CACHE, TOPIC = "test-cache", "test-topic"
VALID = {"INSERT", "MODIFY", "REMOVE"}


def is_valid(record: dict) -> bool:
    return record.get("eventName") in VALID and bool(record.get("dynamodb", {}).get("Keys"))


def expected_cache(records: list[dict], now: float) -> dict[str, dict]:
    last: dict[str, dict] = {}
    for record in records:
        keys = record.get("dynamodb", {}).get("Keys")
        if keys:
            last["#".join(plain(keys[name]) for name in sorted(keys))] = record
    cache = {}
    for key, record in last.items():
        image = record["dynamodb"].get("NewImage")
        if not is_valid(record) or record["eventName"] == "REMOVE":
            continue
        expires = image.get("ExpiresAt", {}).get("N")
        if expires is not None and now - 5 * 365 * 86400 < float(expires) <= now:
            continue
        cache[key] = {name: plain(value) for name, value in image.items()}
    return cache


@pytest.fixture
def sample_handler(handler_env):
    env = json.loads((EVENTS / "env.json").read_text())["StreamProcessorFunction"]
    # The sample environment, pointed at the local server instead of the Docker host.
    return handler_env(TTL_ATTRIBUTE=env["TTL_ATTRIBUTE"], DEFAULT_TTL_SECONDS=env["DEFAULT_TTL_SECONDS"])


def test_every_sample_is_exercised():
    names = {path.name for path in SAMPLES}
    assert {"insert.json", "modify.json", "remove.json", "ttl-expiry-remove.json", "mixed-batch.json"} <= names
    assert {"every-type.json", "poison-record.json"} <= names


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_sample_event_through_the_handler(sample, sample_handler, momento_server, lambda_context, dead_letter_queue):
    import time

    event = json.loads(sample.read_text())
    records = event["Records"]

    response = sample_handler(event, lambda_context())

    assert response == {"batchItemFailures": []}
    cache = {k: json.loads(v, parse_float=Decimal) for k, v in momento_server.cache_items(CACHE).items()}
    assert cache == expected_cache(records, time.time())
    published = [json.loads(m) for m in momento_server.published(CACHE, TOPIC)]
    assert sorted(m["eventID"] for m in published) == sorted(r["eventID"] for r in records if is_valid(r))
    poison = dead_letter_queue.bodies()
    assert sorted(p["record"]["eventID"] for p in poison) == sorted(r["eventID"] for r in records if not is_valid(r))
    assert all(p["kind"] == "poison-record" and p["reason"] for p in poison)
    for message in published:
        record = next(r for r in records if r["eventID"] == message["eventID"])
        assert message["sequenceNumber"] == record["dynamodb"]["SequenceNumber"]
        assert message["expired"] is (record.get("userIdentity", {}).get("principalId") == "dynamodb.amazonaws.com")


def test_every_type_sample_keeps_numbers_exact(sample_handler, momento_server, lambda_context):
    event = json.loads((EVENTS / "every-type.json").read_text())

    sample_handler(event, lambda_context())

    (value,) = momento_server.cache_items(CACHE).values()
    assert "12345678901234567890.123456789" in value.decode()
    image = event["Records"][0]["dynamodb"]["NewImage"]
    assert set(image) == set(json.loads(value))
    assert {next(iter(v)) for v in image.values()} >= {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
