"""Stream records to changes: what a valid record yields, and every reason a record is poison (points 1, 5, 7)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from stream_processor.changes import PoisonRecordError, parse_change, sequence_number_of, table_name_of
from tests.stream_processor.records import (
    CREATED,
    WEATHER_STREAM_ARN,
    image,
    insert,
    keys_only,
    modify,
    record,
    remove,
    ttl_remove,
)

# --- valid records -----------------------------------------------------------------------------------------------


def test_an_insert_yields_its_change() -> None:
    raw = insert("Oslo", seq=101, Temperature="4", Conditions="snow")
    change = parse_change(raw)
    assert change.record is raw
    assert change.sequence_number == "101"
    assert change.event_id == raw["eventID"]
    assert change.event_name == "INSERT"
    assert change.table == "weather"
    assert change.keys == {"Location": {"S": "Oslo"}}
    assert change.new_image == image("Oslo", Temperature="4", Conditions="snow")
    assert change.old_image is None
    assert change.approximate_creation_time == raw["dynamodb"]["ApproximateCreationDateTime"]
    assert change.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert change.removed_by_ttl is False
    assert change.needs_table_read is False


def test_a_modify_carries_both_images() -> None:
    change = parse_change(modify("Oslo", seq=102, old={"Temperature": "4"}, Temperature="5"))
    assert change.event_name == "MODIFY"
    assert change.new_image == image("Oslo", Temperature="5")
    assert change.old_image == image("Oslo", Temperature="4")


def test_a_remove_carries_the_old_image_and_no_new_one() -> None:
    change = parse_change(remove("Oslo", seq=103, Temperature="5"))
    assert change.event_name == "REMOVE"
    assert change.new_image is None
    assert change.old_image == image("Oslo", Temperature="5")
    assert change.needs_table_read is False


def test_creation_time_is_the_epoch_number_of_the_record() -> None:
    for created in (CREATED, 1795000000.5):
        raw = insert("Oslo", seq=1)
        raw["dynamodb"]["ApproximateCreationDateTime"] = created
        assert parse_change(raw).approximate_creation_time == created
    for missing in (None, "2026-11-01T00:00:00Z", True):
        raw = insert("Oslo", seq=1)
        raw["dynamodb"]["ApproximateCreationDateTime"] = missing
        assert parse_change(raw).approximate_creation_time is None


@pytest.mark.parametrize("view_type", ["NEW_IMAGE", "NEW_AND_OLD_IMAGES"])
def test_streams_with_new_images_need_no_table_read(view_type: str) -> None:
    raw = record("INSERT", "Oslo", seq=1, new=image("Oslo"), view_type=view_type)
    assert parse_change(raw).needs_table_read is False


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
def test_a_keys_only_write_needs_a_table_read(event_name: str) -> None:
    change = parse_change(keys_only(event_name, "Oslo", seq=7))
    assert change.needs_table_read is True
    assert change.new_image is None
    assert change.keys == {"Location": {"S": "Oslo"}}
    assert change.stream_view_type == "KEYS_ONLY"


def test_an_old_image_modify_needs_a_table_read() -> None:
    raw = record("MODIFY", "Oslo", seq=7, old=image("Oslo", Temperature="4"), view_type="OLD_IMAGE")
    change = parse_change(raw)
    assert change.needs_table_read is True
    assert change.old_image == image("Oslo", Temperature="4")


@pytest.mark.parametrize("view_type", ["KEYS_ONLY", "OLD_IMAGE"])
def test_a_remove_never_needs_a_table_read(view_type: str) -> None:
    assert parse_change(record("REMOVE", "Oslo", seq=7, view_type=view_type)).needs_table_read is False


# --- removals by DynamoDB TTL ------------------------------------------------------------------------------------


def test_a_remove_by_the_dynamodb_service_principal_is_a_ttl_removal() -> None:
    assert parse_change(ttl_remove("Oslo", seq=9)).removed_by_ttl is True


@pytest.mark.parametrize(
    "identity",
    [
        None,
        {"type": "Service", "principalId": "lambda.amazonaws.com"},
        {"type": "User", "principalId": "dynamodb.amazonaws.com"},
        {"principalId": "dynamodb.amazonaws.com"},
        "Service",
    ],
)
def test_other_removes_are_not_ttl_removals(identity: Any) -> None:
    raw = remove("Oslo", seq=9)
    if identity is not None:
        raw["userIdentity"] = identity
    assert parse_change(raw).removed_by_ttl is False


def test_only_a_remove_can_be_a_ttl_removal() -> None:
    raw = insert("Oslo", seq=9)
    raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert parse_change(raw).removed_by_ttl is False


# --- poison records ----------------------------------------------------------------------------------------------


def mutated(change: Callable[[dict[str, Any]], None], base: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = copy.deepcopy(base or insert("Oslo", seq=5, Temperature="4"))
    change(raw)
    return raw


def set_path(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    *path, value = path_and_value

    def apply(raw: dict[str, Any]) -> None:
        target = raw
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return apply


def delete_path(*path: str) -> Callable[[dict[str, Any]], None]:
    def apply(raw: dict[str, Any]) -> None:
        target = raw
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return apply


POISON = {
    "not a mapping (list)": (["INSERT"], "record"),
    "not a mapping (string)": ("INSERT", "record"),
    "not a mapping (None)": (None, "record"),
    "kinesis record": (mutated(set_path("eventSource", "aws:kinesis")), "eventSource"),
    "no eventSource": (mutated(delete_path("eventSource")), "eventSource"),
    "no dynamodb": (mutated(delete_path("dynamodb")), "dynamodb"),
    "dynamodb not an object": (mutated(set_path("dynamodb", "oops")), "dynamodb"),
    "no SequenceNumber": (mutated(delete_path("dynamodb", "SequenceNumber")), "SequenceNumber"),
    "empty SequenceNumber": (mutated(set_path("dynamodb", "SequenceNumber", "")), "SequenceNumber"),
    "letters in SequenceNumber": (mutated(set_path("dynamodb", "SequenceNumber", "12a4")), "SequenceNumber"),
    "negative SequenceNumber": (mutated(set_path("dynamodb", "SequenceNumber", "-12")), "SequenceNumber"),
    "SequenceNumber as a JSON number": (mutated(set_path("dynamodb", "SequenceNumber", 12)), "SequenceNumber"),
    "superscript digits in SequenceNumber": (mutated(set_path("dynamodb", "SequenceNumber", "1²")), "SequenceNumber"),
    "unknown eventName": (mutated(set_path("eventName", "DELETE")), "eventName"),
    "lower-case eventName": (mutated(set_path("eventName", "insert")), "eventName"),
    "no eventName": (mutated(delete_path("eventName")), "eventName"),
    "no eventSourceARN": (mutated(delete_path("eventSourceARN")), "eventSourceARN"),
    "kinesis ARN": (
        mutated(set_path("eventSourceARN", "arn:aws:kinesis:us-east-1:123456789012:stream/weather")),
        "eventSourceARN",
    ),
    "ARN without a table name": (
        mutated(set_path("eventSourceARN", "arn:aws:dynamodb:us-east-1:123456789012:table//stream/x")),
        "eventSourceARN",
    ),
    "not an ARN": (mutated(set_path("eventSourceARN", "weather")), "eventSourceARN"),
    "no Keys": (mutated(delete_path("dynamodb", "Keys")), "Keys"),
    "empty Keys": (mutated(set_path("dynamodb", "Keys", {})), "Keys"),
    "Keys not an object": (mutated(set_path("dynamodb", "Keys", ["Location"])), "Keys"),
    "INSERT without NewImage": (mutated(delete_path("dynamodb", "NewImage")), "NewImage"),
    "MODIFY without NewImage": (
        mutated(delete_path("dynamodb", "NewImage"), modify("Oslo", seq=5, Temperature="5")),
        "NewImage",
    ),
    "NEW_IMAGE INSERT without NewImage": (
        record("INSERT", "Oslo", seq=5, view_type="NEW_IMAGE"),
        "NewImage",
    ),
    "INSERT without NewImage nor view type": (
        mutated(delete_path("dynamodb", "StreamViewType"), record("INSERT", "Oslo", seq=5)),
        "NewImage",
    ),
    "NewImage not an object": (mutated(set_path("dynamodb", "NewImage", "Oslo")), "NewImage"),
    "OldImage not an object": (mutated(set_path("dynamodb", "OldImage", ["Oslo"])), "OldImage"),
}


@pytest.mark.parametrize(("raw", "mentions"), POISON.values(), ids=POISON.keys())
def test_a_record_that_can_never_succeed_is_poison_with_a_reason(raw: Any, mentions: str) -> None:
    with pytest.raises(PoisonRecordError) as raised:
        parse_change(raw)
    assert raised.value.reason == str(raised.value)
    assert mentions in raised.value.reason


def test_the_base_record_of_the_poison_cases_is_valid() -> None:
    # every poison case above differs from a valid record by the one thing it names
    parse_change(insert("Oslo", seq=5, Temperature="4"))
    parse_change(modify("Oslo", seq=5, Temperature="5"))


# --- helpers -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "table"),
    [
        (WEATHER_STREAM_ARN, "weather"),
        (
            "arn:aws:dynamodb:eu-west-1:123456789012:table/my-table_v2.prod/stream/2026-01-01T00:00:00.000",
            "my-table_v2.prod",
        ),
        ("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000", "orders"),
        ("arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/orders/stream/label", "orders"),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/weather", "weather"),
        ("arn:aws:kinesis:us-east-1:123456789012:stream/weather", None),
        ("arn:aws:dynamodb:us-east-1:123456789012:index/weather", None),
        ("", None),
        (None, None),
        (7, None),
    ],
)
def test_table_name_of_a_stream_arn(arn: Any, table: str | None) -> None:
    assert table_name_of(arn) == table


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        (
            insert("Oslo", seq=49668178592157356446279651563212296594952925373052862466),
            "49668178592157356446279651563212296594952925373052862466",
        ),
        ({"dynamodb": {"SequenceNumber": "007"}}, "007"),
        ({"dynamodb": {"SequenceNumber": "1²"}}, None),
        ({"dynamodb": {"SequenceNumber": "1 2"}}, None),
        ({"dynamodb": {"SequenceNumber": 12}}, None),
        ({"dynamodb": {}}, None),
        ({"dynamodb": "x"}, None),
        ({}, None),
        ("record", None),
    ],
)
def test_sequence_number_of_a_record(raw: Any, number: str | None) -> None:
    assert sequence_number_of(raw) == number
