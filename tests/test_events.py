"""Every sample event in events/ through `make invoke`'s module: the real handler, the template's environment, the
local Momento server and moto, so the samples cannot rot and what `make invoke` prints is what happened.

The expected cache state and messages come from an oracle written independently of the processor: the last change
of each key decides the cache entry, every valid record is published once, poison records land in the DLQ.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from local_pipeline import invoke
from local_pipeline.function_environment import function_config, load_template
from tests.local_pipeline.invoke_output import cache_entries, messages, response
from tests.oracles import plain

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "events"
SAMPLES = sorted(path for path in EVENTS.glob("*.json") if path.name != "env.json")
ENVIRONMENT = function_config(load_template(REPO / "template.yaml"), "StreamProcessorFunction").environment
CACHE, TOPIC = ENVIRONMENT["CACHE_NAME"], ENVIRONMENT["TOPIC_NAME"]
TTL_ATTRIBUTE = ENVIRONMENT["TTL_ATTRIBUTE"]
VALID = {"INSERT", "MODIFY", "REMOVE"}


def is_valid(record: dict) -> bool:
    return record.get("eventName") in VALID and bool(record.get("dynamodb", {}).get("Keys"))


def expected_cache(records: list[dict], now: float) -> dict[str, dict]:
    last: dict[str, dict] = {}
    for record in records:
        keys = record.get("dynamodb", {}).get("Keys")
        if keys:
            last["#".join(str(plain(keys[name])) for name in sorted(keys))] = record
    cache = {}
    for key, record in last.items():
        image = record["dynamodb"].get("NewImage")
        if not is_valid(record) or record["eventName"] == "REMOVE":
            continue
        expires = image.get(TTL_ATTRIBUTE, {}).get("N")
        if expires is not None and now - 5 * 365 * 86400 < float(expires) <= now:
            continue
        cache[key] = {name: plain(value) for name, value in image.items()}
    return cache


def invoke_sample(sample: Path, server, capsys, *extra: str) -> tuple[int, str]:
    status = invoke.main([str(sample), *extra], server=server)
    return status, capsys.readouterr().out


def test_every_sample_is_exercised():
    names = {path.name for path in SAMPLES}
    assert {"insert.json", "modify.json", "remove.json", "ttl-expiry-remove.json", "mixed-batch.json"} <= names
    assert {"every-type.json", "poison-record.json"} <= names


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_sample_event_through_make_invoke(sample, momento_server, capsys):
    event = json.loads(sample.read_text())
    records = event["Records"]

    status, output = invoke_sample(sample, momento_server, capsys)

    assert status == 0, output
    assert response(output) == {"batchItemFailures": []}
    # What it prints is what the server holds ...
    server_cache = {k: json.loads(v, parse_float=Decimal) for k, v in momento_server.cache_items(CACHE).items()}
    printed = cache_entries(output)
    assert {key: value for key, (value, _) in printed.items()} == server_cache
    for key, (_, ttl) in printed.items():
        assert ttl == pytest.approx(momento_server.ttl_remaining_seconds(CACHE, key), abs=2)
    published = [json.loads(m) for m in momento_server.published(CACHE, TOPIC)]
    assert messages(output) == published
    # ... and what the server holds is what the oracle expects.
    assert server_cache == expected_cache(records, time.time())
    assert sorted(m["eventID"] for m in published) == sorted(r["eventID"] for r in records if is_valid(r))
    poison = [r for r in records if not is_valid(r)]
    dlq = "\n".join(line for line in output.splitlines() if "poison record " in line)
    assert all(record["eventID"] in dlq for record in poison)
    assert (f"{len(poison)} message" in output) if poison else ("DLQ        empty" in output)
    for message in published:
        record = next(r for r in records if r["eventID"] == message["eventID"])
        assert message["sequenceNumber"] == record["dynamodb"]["SequenceNumber"]
        assert message["expired"] is (record.get("userIdentity", {}).get("principalId") == "dynamodb.amazonaws.com")


def test_every_type_sample_keeps_numbers_exact(momento_server, capsys):
    event = json.loads((EVENTS / "every-type.json").read_text())

    invoke_sample(EVENTS / "every-type.json", momento_server, capsys)

    (value,) = momento_server.cache_items(CACHE).values()
    assert "12345678901234567890.123456789" in value.decode()
    image = event["Records"][0]["dynamodb"]["NewImage"]
    assert set(image) == set(json.loads(value))
    assert {next(iter(v)) for v in image.values()} >= {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}


def test_with_the_sample_env_vars_poison_records_are_reported_instead_of_dead_lettered(momento_server, capsys):
    # events/env.json (the `sam local invoke --env-vars` file) leaves DLQ_URL empty.
    event = json.loads((EVENTS / "poison-record.json").read_text())
    poison = [r["dynamodb"]["SequenceNumber"] for r in event["Records"] if not is_valid(r)]

    status, output = invoke_sample(
        EVENTS / "poison-record.json", momento_server, capsys, "--env-vars", "events/env.json"
    )

    assert status == 0, output
    reported = [item["itemIdentifier"] for item in response(output)["batchItemFailures"]]
    assert reported == sorted(poison, key=int)
    assert "DLQ_URL is unset" in output
