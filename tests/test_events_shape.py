"""The sample events in events/ have the exact shape Lambda gives a DynamoDB stream consumer.

Each file parses with Powertools' `DynamoDBStreamModel`, except the poison-record sample, where exactly the two
intended records fail. Sequence numbers are numeric strings that increase within a batch (as within a shard), and
ApproximateCreationDateTime is epoch seconds, as Lambda sends them.
"""

from __future__ import annotations

import base64
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel, DynamoDBStreamRecordModel
from pydantic import ValidationError

EVENTS = Path(__file__).resolve().parents[1] / "events"
SAMPLES = sorted(path.name for path in EVENTS.glob("*.json") if path.name != "env.json")
EXPECTED = {
    "insert.json",
    "modify.json",
    "remove.json",
    "ttl-expiry-remove.json",
    "mixed-batch.json",
    "every-type.json",
    "poison-record.json",
}
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/weather/stream/2026-11-01T00:00:00.000"
# 2026-01-01 .. 2030-01-01: recent-looking epoch seconds (milliseconds or an ISO string would be out of range).
EPOCH_RANGE = (1767225600, 1893456000)
TTL_TOMBSTONE = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
# Records of poison-record.json that must fail validation, by index, and the field that fails.
POISON = {1: "eventName", 2: "Keys"}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def records(name: str) -> list[dict[str, Any]]:
    return load(name)["Records"]


def test_every_expected_sample_is_there() -> None:
    assert set(SAMPLES) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED - {"poison-record.json"}))
def test_sample_parses_as_a_lambda_dynamodb_stream_event(name: str) -> None:
    event = DynamoDBStreamModel.model_validate(load(name))
    assert event.Records


@pytest.mark.parametrize("name", SAMPLES)
def test_records_have_the_lambda_envelope(name: str) -> None:
    for record in records(name):
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == "us-east-1"
        assert record["eventSourceARN"] == STREAM_ARN
        assert len(record["eventID"]) == 32 and int(record["eventID"], 16) >= 0
        change = record["dynamodb"]
        assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(change["SizeBytes"], int) and change["SizeBytes"] > 0
        created = change["ApproximateCreationDateTime"]
        assert isinstance(created, int | float) and not isinstance(created, bool)
        assert EPOCH_RANGE[0] < created < EPOCH_RANGE[1]


@pytest.mark.parametrize("name", SAMPLES)
def test_sequence_numbers_are_numeric_and_increase(name: str) -> None:
    numbers = [record["dynamodb"]["SequenceNumber"] for record in records(name)]
    assert all(isinstance(number, str) and number.isdigit() for number in numbers)
    as_integers = [int(number) for number in numbers]
    assert as_integers == sorted(set(as_integers))


@pytest.mark.parametrize("name", SAMPLES)
def test_images_match_the_event_name(name: str) -> None:
    """NEW_AND_OLD_IMAGES: INSERT has only a new image, REMOVE only an old one, MODIFY both; keys are in images."""
    for record in records(name):
        change = record["dynamodb"]
        expected = {"INSERT": {"NewImage"}, "MODIFY": {"NewImage", "OldImage"}, "REMOVE": {"OldImage"}}
        if record["eventName"] in expected:
            assert {"NewImage", "OldImage"} & set(change) == expected[record["eventName"]]
        for image in ("NewImage", "OldImage"):
            if image in change and "Keys" in change:
                assert change["Keys"].items() <= change[image].items()


def test_poison_sample_fails_exactly_on_the_intended_records() -> None:
    with pytest.raises(ValidationError):
        DynamoDBStreamModel.model_validate(load("poison-record.json"))
    failing = {}
    for index, record in enumerate(records("poison-record.json")):
        try:
            DynamoDBStreamRecordModel.model_validate(record)
        except ValidationError as error:
            failing[index] = {str(part) for problem in error.errors() for part in problem["loc"]}
    assert set(failing) == set(POISON)
    for index, field in POISON.items():
        assert field in failing[index]


def test_poison_sample_has_good_records_around_the_poison() -> None:
    good = [r for i, r in enumerate(records("poison-record.json")) if i not in POISON]
    assert len(good) >= 1
    assert {r["eventName"] for r in good} <= {"INSERT", "MODIFY", "REMOVE"}
    assert records("poison-record.json")[1]["eventName"] not in {"INSERT", "MODIFY", "REMOVE"}
    assert "Keys" not in records("poison-record.json")[2]["dynamodb"]


def test_single_change_samples() -> None:
    for name, event_name in (("insert.json", "INSERT"), ("modify.json", "MODIFY"), ("remove.json", "REMOVE")):
        (record,) = records(name)
        assert record["eventName"] == event_name
        assert "userIdentity" not in record, "a user's change carries no userIdentity"


def test_ttl_expiry_remove_is_a_service_deletion_of_an_expired_item() -> None:
    (record,) = records("ttl-expiry-remove.json")
    assert record["eventName"] == "REMOVE"
    assert record["userIdentity"] == TTL_TOMBSTONE
    old = record["dynamodb"]["OldImage"]
    assert int(old["ExpiresAt"]["N"]) < record["dynamodb"]["ApproximateCreationDateTime"]


def test_items_not_meant_to_expire_expire_far_in_the_future() -> None:
    for name in SAMPLES:
        if name == "ttl-expiry-remove.json":
            continue
        for record in records(name):
            for image in ("NewImage", "OldImage"):
                if "ExpiresAt" in record["dynamodb"].get(image, {}):
                    assert int(record["dynamodb"][image]["ExpiresAt"]["N"]) >= 4102444800, (name, image)


def test_mixed_batch_interleaves_changes_of_three_keys_with_repeats() -> None:
    batch = records("mixed-batch.json")
    keys = [record["dynamodb"]["Keys"]["Location"]["S"] for record in batch]
    assert len(batch) >= 8
    assert len(set(keys)) == 3
    assert all(keys.count(key) >= 3 for key in set(keys))
    names = [record["eventName"] for record in batch]
    assert {"INSERT", "MODIFY", "REMOVE"} <= set(names)
    assert any(a != b for a, b in itertools.pairwise(names))
    # A key removed and then written again within the batch: the order per key matters.
    for key in set(keys):
        mine = [n for k, n in zip(keys, names, strict=True) if k == key]
        if "REMOVE" in mine[:-1]:
            break
    else:
        pytest.fail("no key is written again after a REMOVE in the batch")


def test_every_type_sample_uses_every_dynamodb_type() -> None:
    (record,) = records("every-type.json")
    image = record["dynamodb"]["NewImage"]
    top_level = {type_ for value in image.values() for type_ in value}
    assert top_level == {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
    numbers = [value["N"] for value in image.values() if "N" in value]
    assert max(len(Decimal(n).as_tuple().digits) for n in numbers) == 38  # DynamoDB's full precision
    assert "12345678901234567890.123456789" in numbers
    nested = [value for value in image.values() if "M" in value and any("L" in v for v in value["M"].values())]
    assert nested, "a map holding a list"
    for value in walk(image):
        if "B" in value:
            base64.b64decode(value["B"], validate=True)
        for blob in value.get("BS", []):
            base64.b64decode(blob, validate=True)
    parsed = DynamoDBStreamRecordModel.model_validate(record)
    assert parsed.dynamodb.NewImage["MaxTemp"] == Decimal("12345678901234567890.123456789")


def walk(image: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attribute value of an image, nested ones included."""
    found = []
    for value in image.values():
        found.append(value)
        if "M" in value:
            found += walk(value["M"])
        if "L" in value:
            found += walk(dict(enumerate(value["L"])))
    return found
