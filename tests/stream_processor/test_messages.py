"""Change messages: exact content, `expired`, projection, size fallbacks and poison (point 5, clarifications 3, 4)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from stream_processor.changes import Change, PoisonRecordError, parse_change
from stream_processor.messages import MessageFormat
from tests.stream_processor.records import insert, modify, record, remove, ttl_remove

FORMAT = MessageFormat()
MINIMAL_FIELDS = {"eventName", "eventID", "sequenceNumber", "table", "key", "expired"}


def decode(message: bytes) -> dict[str, Any]:
    return json.loads(message.decode("utf-8"), parse_float=Decimal)


def change_of(raw: dict[str, Any]) -> Change:
    return parse_change(raw)


def identity(raw: dict[str, Any], key: str = "Oslo") -> dict[str, Any]:
    return {
        "eventName": raw["eventName"],
        "eventID": raw["eventID"],
        "sequenceNumber": raw["dynamodb"]["SequenceNumber"],
        "table": "weather",
        "key": key,
    }


# --- content -----------------------------------------------------------------------------------------------------


def test_an_insert_message_has_exactly_the_documented_fields() -> None:
    raw = insert("Oslo", seq=101, Temperature="4.5", Conditions="snow")
    assert decode(FORMAT.change_message(change_of(raw), "Oslo")) == {
        **identity(raw),
        "keys": {"Location": "Oslo"},
        "newImage": {"Location": "Oslo", "Temperature": Decimal("4.5"), "Conditions": "snow"},
        "approximateCreationDateTime": raw["dynamodb"]["ApproximateCreationDateTime"],
        "expired": False,
    }


def test_a_modify_message_carries_both_images() -> None:
    raw = modify("Oslo", seq=102, old={"Temperature": "4"}, Temperature="5")
    assert decode(FORMAT.change_message(change_of(raw), "Oslo")) == {
        **identity(raw),
        "keys": {"Location": "Oslo"},
        "newImage": {"Location": "Oslo", "Temperature": 5},
        "oldImage": {"Location": "Oslo", "Temperature": 4},
        "approximateCreationDateTime": raw["dynamodb"]["ApproximateCreationDateTime"],
        "expired": False,
    }


def test_a_remove_message_carries_the_old_image() -> None:
    raw = remove("Oslo", seq=103, Temperature="5")
    assert decode(FORMAT.change_message(change_of(raw), "weather:Oslo")) == {
        **identity(raw, key="weather:Oslo"),
        "keys": {"Location": "Oslo"},
        "oldImage": {"Location": "Oslo", "Temperature": 5},
        "approximateCreationDateTime": raw["dynamodb"]["ApproximateCreationDateTime"],
        "expired": False,
    }


def test_a_keys_only_message_has_no_images() -> None:
    raw = record("INSERT", "Oslo", seq=104, view_type="KEYS_ONLY")
    message = decode(FORMAT.change_message(change_of(raw), "Oslo"))
    assert "newImage" not in message
    assert "oldImage" not in message
    assert message["keys"] == {"Location": "Oslo"}


def test_a_ttl_removal_is_expired() -> None:
    message = decode(FORMAT.change_message(change_of(ttl_remove("Oslo", seq=105, Temperature="5")), "Oslo"))
    assert message["expired"] is True
    assert message["eventName"] == "REMOVE"


def test_a_remove_by_someone_else_is_not_expired() -> None:
    raw = remove("Oslo", seq=106)
    raw["userIdentity"] = {"type": "Service", "principalId": "application-autoscaling.amazonaws.com"}
    assert decode(FORMAT.change_message(change_of(raw), "Oslo"))["expired"] is False


def test_the_creation_time_is_the_epoch_seconds_number_of_the_record() -> None:
    raw = insert("Oslo", seq=107)
    raw["dynamodb"]["ApproximateCreationDateTime"] = 1795000107
    text = FORMAT.change_message(change_of(raw), "Oslo")
    assert b'"approximateCreationDateTime":1795000107' in text


def test_messages_are_compact_utf8_with_exact_numbers() -> None:
    raw = insert("Zürich", seq=108, Reading="12345678901234567890.123456789", Note="☀ 東京\n")
    message = FORMAT.change_message(change_of(raw), "Zürich")
    assert "Zürich".encode() in message
    assert "☀ 東京".encode() in message
    assert b"\\u" not in message
    assert b'"Reading":12345678901234567890.123456789' in message
    assert b'":"' in message  # compact separators
    assert b'": ' not in message
    assert b", " not in message
    assert decode(message)["newImage"]["Note"] == "☀ 東京\n"


def test_redriven_messages_say_so() -> None:
    raw = insert("Oslo", seq=109)
    assert decode(FORMAT.change_message(change_of(raw), "Oslo", redriven=True))["redriven"] is True
    assert "redriven" not in decode(FORMAT.change_message(change_of(raw), "Oslo"))


# --- projection applies to images, never to keys -----------------------------------------------------------------


def test_excluded_attributes_never_appear_in_a_message() -> None:
    raw = modify("Oslo", seq=110, old={"ApiToken": "old-secret-value"}, ApiToken="new-secret-value", Temperature="4")
    message = MessageFormat(exclude=frozenset({"ApiToken"})).change_message(change_of(raw), "Oslo")
    assert b"ApiToken" not in message
    assert b"secret-value" not in message
    assert decode(message)["newImage"] == {"Location": "Oslo", "Temperature": 4}
    assert decode(message)["oldImage"] == {"Location": "Oslo"}


def test_included_attributes_limit_both_images_but_not_the_keys() -> None:
    raw = modify("Oslo", seq=111, old={"Temperature": "4", "Conditions": "snow"}, Temperature="5", Conditions="sun")
    message = decode(MessageFormat(include=frozenset({"Temperature"})).change_message(change_of(raw), "Oslo"))
    assert message["newImage"] == {"Temperature": 5}
    assert message["oldImage"] == {"Temperature": 4}
    assert message["keys"] == {"Location": "Oslo"}


# --- the size limit ----------------------------------------------------------------------------------------------


def full_size(raw: dict[str, Any], key: str = "Oslo") -> int:
    return len(MessageFormat(max_bytes=10**9).change_message(change_of(raw), key))


def test_a_message_of_exactly_the_limit_is_sent_whole() -> None:
    raw = modify("Oslo", seq=112, old={"Notes": "a" * 1500}, Notes="b" * 1500)
    size = full_size(raw)
    message = MessageFormat(max_bytes=size).change_message(change_of(raw), "Oslo")
    assert len(message) == size
    assert "truncated" not in decode(message)
    assert "newImage" in decode(message)


def test_a_message_over_the_limit_goes_without_images_and_says_truncated() -> None:
    raw = modify("Oslo", seq=113, old={"Notes": "a" * 3000}, Notes="ö" * 3000)
    assert full_size(raw) > 4096
    message = FORMAT.change_message(change_of(raw), "Oslo")
    assert len(message) <= 4096
    assert decode(message) == {
        **identity(raw),
        "keys": {"Location": "Oslo"},
        "approximateCreationDateTime": raw["dynamodb"]["ApproximateCreationDateTime"],
        "expired": False,
        "truncated": True,
    }


def test_one_byte_over_the_limit_is_truncated() -> None:
    raw = insert("Oslo", seq=114, Notes="x" * 600)
    size = full_size(raw)
    message = decode(MessageFormat(max_bytes=size - 1).change_message(change_of(raw), "Oslo"))
    assert message["truncated"] is True
    assert "newImage" not in message


def test_a_truncated_ttl_removal_is_still_expired_and_a_truncated_redrive_still_redriven() -> None:
    raw = ttl_remove("Oslo", seq=115, Notes="x" * 5000)
    message = decode(FORMAT.change_message(change_of(raw), "Oslo", redriven=True))
    assert message["truncated"] is True
    assert message["expired"] is True
    assert message["redriven"] is True


def long_key_record(length: int, seq: int) -> tuple[dict[str, Any], str]:
    location = "L" * length
    return insert(location, seq=seq, Notes="x" * 2000), location


def test_a_message_still_too_large_without_images_keeps_only_the_identifying_fields() -> None:
    raw, key = long_key_record(2100, seq=116)  # key + keys > 4096, key alone fits
    message = FORMAT.change_message(change_of(raw), key)
    assert len(message) <= 4096
    assert decode(message) == {**identity(raw, key=key), "expired": False}
    assert set(decode(message)) == MINIMAL_FIELDS


def test_a_change_whose_message_cannot_fit_at_all_is_poison() -> None:
    raw, key = long_key_record(4100, seq=117)
    with pytest.raises(PoisonRecordError) as raised:
        FORMAT.change_message(change_of(raw), key)
    assert "4096" in raised.value.reason


# --- malformed images --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("NewImage", {"Location": {"S": "Oslo"}, "Temperature": {"N": "warm"}}),
        ("OldImage", {"Location": {"S": "Oslo"}, "Tags": {"SS": "not-a-list"}}),
        ("NewImage", {"Location": {"Q": "Oslo"}}),
        ("Keys", {"Location": {"S": "Oslo", "N": "1"}}),
    ],
)
def test_a_malformed_image_or_key_is_poison(part: str, value: dict[str, Any]) -> None:
    raw = modify("Oslo", seq=118, Temperature="4")
    raw["dynamodb"][part] = value
    with pytest.raises(PoisonRecordError) as raised:
        FORMAT.change_message(change_of(raw), "Oslo")
    assert raised.value.reason


def test_a_malformed_attribute_makes_the_record_poison_even_when_it_is_excluded() -> None:
    # DynamoDB cannot have sent it, so no part of the record is trusted (an excluded TTL attribute still sets TTLs)
    raw = insert("Oslo", seq=119, Temperature="4")
    raw["dynamodb"]["NewImage"]["Broken"] = {"N": "warm"}
    with pytest.raises(PoisonRecordError) as raised:
        change_of(raw)
    assert "dynamodb.NewImage.Broken.N" in raised.value.reason
    assert "warm" not in raised.value.reason


# --- property: the richest form that fits, never over the limit --------------------------------------------------


def encoded_size(message: dict[str, Any]) -> int:
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@settings(max_examples=150, deadline=None)
@given(
    key_length=st.integers(1, 2500),
    new_length=st.integers(0, 3000),
    old_length=st.integers(0, 3000),
    wide=st.sampled_from(["a", "é", "東", "🌧", '"', "\n"]),
    max_bytes=st.integers(256, 6000),
    removed_by_ttl=st.booleans(),
)
def test_the_message_is_the_richest_documented_form_that_fits(
    key_length: int, new_length: int, old_length: int, wide: str, max_bytes: int, removed_by_ttl: bool
) -> None:
    location = "k" * key_length
    raw = (
        modify(location, seq=120, old={"Notes": wide * old_length}, Notes=wide * new_length)
        if not removed_by_ttl
        else ttl_remove(location, seq=120, Notes=wide * old_length)
    )
    key = f"weather:{location}"
    identifying = {**identity(raw, key=key), "expired": removed_by_ttl}
    created = {"approximateCreationDateTime": raw["dynamodb"]["ApproximateCreationDateTime"]}
    images = {"oldImage": {"Location": location, "Notes": wide * old_length}}
    if not removed_by_ttl:
        images["newImage"] = {"Location": location, "Notes": wide * new_length}
    full = {**identifying, "keys": {"Location": location}, **images, **created}
    truncated = {**identifying, "keys": {"Location": location}, **created, "truncated": True}

    try:
        message = MessageFormat(max_bytes=max_bytes).change_message(change_of(raw), key)
    except PoisonRecordError:
        event("poison")
        assert encoded_size(identifying) > max_bytes
        return
    assert len(message) <= max_bytes
    expected = next(form for form in (full, truncated, identifying) if encoded_size(form) <= max_bytes)
    event("full" if expected is full else "truncated" if expected is truncated else "identifying fields only")
    assert decode(message) == expected
