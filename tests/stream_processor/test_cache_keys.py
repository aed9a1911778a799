"""Cache keys from key attributes only: default form, KEY_TEMPLATE, value rendering, mismatches (point 2)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processor.cache_keys import CacheKeyBuilder, KeyTemplateMismatch, key_value_text
from stream_processor.changes import PoisonRecordError, parse_change
from tests.dynamodb_values import numbers
from tests.stream_processor.records import WEATHER_STREAM_ARN, insert, modify, record, remove, ttl_remove

DEFAULT = CacheKeyBuilder(None)


def key_of(builder: CacheKeyBuilder, raw: dict[str, Any]) -> str:
    change = parse_change(raw)
    return builder.cache_key(change.table, change.keys)


# --- the default key ---------------------------------------------------------------------------------------------


def test_a_single_key_attribute_is_the_key() -> None:
    assert key_of(DEFAULT, insert("Oslo", seq=1)) == "Oslo"


def test_the_default_key_orders_values_by_attribute_name_and_joins_them_with_a_hash() -> None:
    keys = {"sk": {"S": "2026-11-01"}, "pk": {"S": "station#17"}}  # deliberately not in name order
    assert DEFAULT.cache_key("readings", keys) == "station#17#2026-11-01"
    assert DEFAULT.cache_key("readings", dict(reversed(keys.items()))) == "station#17#2026-11-01"


def test_the_default_key_ignores_the_table() -> None:
    keys = {"Location": {"S": "Oslo"}}
    assert DEFAULT.cache_key("weather", keys) == DEFAULT.cache_key("other", keys) == "Oslo"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"S": "Zürich #1"}, "Zürich #1"),
        ({"N": "12345678901234567890.123456789"}, "12345678901234567890.123456789"),
        ({"N": "-0.000001"}, "-0.000001"),
        ({"N": "1E+40"}, "1E+40"),
        ({"N": "42"}, "42"),
        ({"B": "AAEC/w=="}, "AAEC/w=="),
        ({"B": b"\x00\x01\x02\xff"}, "AAEC/w=="),
    ],
)
def test_key_values_render_s_as_is_n_as_exact_text_and_b_as_base64(value: dict[str, Any], text: str) -> None:
    assert key_value_text(value) == text
    assert DEFAULT.cache_key("t", {"k": value}) == text
    assert CacheKeyBuilder("<{k}>").cache_key("t", {"k": value}) == f"<{text}>"


def test_mixed_key_types_in_the_default_key() -> None:
    keys = {"b_id": {"B": "3q2+7w=="}, "a_day": {"N": "20261101"}, "c_name": {"S": "Oslo"}}
    assert DEFAULT.cache_key("t", keys) == "20261101#3q2+7w==#Oslo"


@pytest.mark.parametrize(
    "value",
    [
        {"BOOL": True},
        {"NULL": True},
        {"L": [{"S": "a"}]},
        {"M": {}},
        {"SS": ["a"]},
        {"S": 5},
        {"N": "NaN"},
        {"N": "abc"},
        {"B": 3},
        {"S": "a", "N": "1"},
        "Oslo",
        None,
        {"S": "\ud800"},  # no UTF-8 form: could never be sent to Momento
        {"S": ""},  # DynamoDB key values are never empty
        {"B": ""},
        {"N": True},  # Decimal(True) would render "1"
        {"N": 1},
        {"B": "not base64"},
    ],
)
def test_a_malformed_key_value_makes_the_record_poison(value: Any) -> None:
    with pytest.raises(PoisonRecordError):
        key_value_text(value)
    with pytest.raises(PoisonRecordError) as raised:
        DEFAULT.cache_key("t", {"k": value})
    assert "dynamodb.Keys.k" in raised.value.reason


def test_a_malformed_key_reason_names_the_attribute_and_type_never_the_value() -> None:
    with pytest.raises(PoisonRecordError) as raised:
        DEFAULT.cache_key("t", {"Location": {"N": "Oslo-secret"}})
    assert raised.value.reason == (
        "malformed record: dynamodb.Keys.Location.N must be a string holding a number, "
        "got a string that is not a number"
    )
    with pytest.raises(PoisonRecordError) as raised:
        DEFAULT.cache_key("t", {"Location": {"SS": ["Oslo-secret"]}})
    assert raised.value.reason == (
        "malformed record: dynamodb.Keys.Location must be an S, N or B attribute value, got SS holding an array"
    )


# --- KEY_TEMPLATE ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("{Location}", "Oslo"),
        ("weather:{Location}", "weather:Oslo"),
        ("{table}/{Location}", "weather/Oslo"),
        ("{table}#{table}#{Location}", "weather#weather#Oslo"),
        ("{Location}|{Location}", "Oslo|Oslo"),
    ],
)
def test_key_template_fills_key_attributes_and_the_table_name(template: str, key: str) -> None:
    assert key_of(CacheKeyBuilder(template), insert("Oslo", seq=1)) == key


def test_key_template_over_a_composite_key_of_every_type() -> None:
    builder = CacheKeyBuilder("{table}:{pk}/{sk}/{raw}")
    keys = {"raw": {"B": "AP8="}, "sk": {"N": "-0.000001"}, "pk": {"S": "station"}}
    assert builder.cache_key("readings", keys) == "readings:station/-0.000001/AP8="


def test_the_table_name_comes_from_the_event_source_arn() -> None:
    raw = insert("Oslo", seq=1)
    raw["eventSourceARN"] = WEATHER_STREAM_ARN.replace("table/weather/", "table/weather-eu/")
    assert key_of(CacheKeyBuilder("{table}:{Location}"), raw) == "weather-eu:Oslo"


def test_a_template_attribute_the_keys_lack_is_a_configuration_mismatch_not_poison() -> None:
    builder = CacheKeyBuilder("{pk}#{sk}")
    with pytest.raises(KeyTemplateMismatch) as raised:
        key_of(builder, insert("Oslo", seq=1))
    mismatch = raised.value
    assert not isinstance(mismatch, PoisonRecordError)
    assert mismatch.missing == "pk"
    assert mismatch.available == ("Location",)
    assert "pk" in mismatch.cause
    assert "Location" in mismatch.cause
    assert "KEY_TEMPLATE" in mismatch.cause


def test_a_template_cannot_use_non_key_attributes_even_when_the_new_image_has_them() -> None:
    # Conditions is in the INSERT's new image but a REMOVE would not carry it: so it is never allowed
    builder = CacheKeyBuilder("{Location}:{Conditions}")
    with pytest.raises(KeyTemplateMismatch):
        key_of(builder, insert("Oslo", seq=1, Conditions="snow"))


# --- a REMOVE finds the key its INSERT wrote ---------------------------------------------------------------------


@pytest.mark.parametrize("template", [None, "{Location}", "{table}:{Location}"])
def test_insert_modify_remove_and_ttl_remove_of_an_item_share_one_key(template: str | None) -> None:
    builder = CacheKeyBuilder(template)
    keys = {
        key_of(builder, insert("Oslo", seq=1, Temperature="4")),
        key_of(builder, modify("Oslo", seq=2, old={"Temperature": "4"}, Temperature="5")),
        key_of(builder, remove("Oslo", seq=3, Temperature="5")),
        key_of(builder, ttl_remove("Oslo", seq=4)),
        key_of(builder, record("REMOVE", "Oslo", seq=5, view_type="KEYS_ONLY")),
    }
    assert len(keys) == 1


key_values = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(min_size=1, max_size=10)),
    st.builds(lambda n: {"N": n}, numbers),
    st.builds(lambda b: {"B": base64.b64encode(b).decode()}, st.binary(min_size=1, max_size=8)),
)


@settings(max_examples=60, deadline=None)
@given(
    pk=key_values,
    sk=key_values,
    new_image=st.dictionaries(st.sampled_from(["pk", "sk", "Temperature"]), key_values, max_size=3),
    template=st.sampled_from([None, "{pk}#{sk}", "{table}|{sk}|{pk}"]),
)
def test_a_remove_always_gets_the_key_of_the_insert(
    pk: dict[str, Any], sk: dict[str, Any], new_image: dict[str, Any], template: str | None
) -> None:
    builder = CacheKeyBuilder(template)
    inserted = record("INSERT", "unused", seq=1, new={**new_image, "pk": pk, "sk": sk})
    removed = record("REMOVE", "unused", seq=2, old={**new_image, "pk": pk, "sk": sk})
    for raw in (inserted, removed):
        raw["dynamodb"]["Keys"] = {"pk": pk, "sk": sk}
    assert key_of(builder, inserted) == key_of(builder, removed)
    if template is None:
        assert key_of(builder, inserted) == f"{key_value_text(pk)}#{key_value_text(sk)}"
