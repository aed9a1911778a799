"""DynamoDB JSON to plain JSON: every type, exact numbers, compact UTF-8, malformed values, projection (point 3)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings

from stream_processor.dynamodb_json import (
    InvalidAttributeValue,
    RawJson,
    attribute_map_json,
    attribute_value_json,
    json_object,
    project,
)
from tests.dynamodb_values import images, numbers
from tests.oracles import plain


def loads(text: str) -> Any:
    """Parse JSON keeping every number exact."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def whitespace_outside_strings(text: str) -> str:
    """The whitespace between JSON tokens (compact JSON has none)."""
    found, in_string, escaped = [], False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char.isspace():
            found.append(char)
    return "".join(found)


def test_the_whitespace_checker_sees_whitespace_between_tokens() -> None:
    assert whitespace_outside_strings('{"a b": [1, 2]}') == "  "
    assert whitespace_outside_strings('{"a\\" ":1}') == ""


# --- one value of every type -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"S": "Zürich"}, '"Zürich"'),
        ({"S": ""}, '""'),
        ({"N": "21"}, "21"),
        ({"N": "-3.5"}, "-3.5"),
        ({"BOOL": True}, "true"),
        ({"BOOL": False}, "false"),
        ({"NULL": True}, "null"),
        ({"M": {}}, "{}"),
        ({"L": []}, "[]"),
        ({"SS": ["sunny", "windy"]}, '["sunny","windy"]'),
        ({"NS": ["1", "2.50", "-7"]}, "[1,2.50,-7]"),
        ({"B": "AAEC/w=="}, '"AAEC/w=="'),
        ({"BS": ["AA==", "AQI="]}, '["AA==","AQI="]'),
    ],
)
def test_every_type_maps_to_its_json_counterpart(value: dict[str, Any], expected: str) -> None:
    assert attribute_value_json(value) == expected


def test_nested_maps_and_lists_are_compact_json() -> None:
    image = {
        "Location": {"S": "Oslo"},
        "Forecast": {
            "L": [
                {"M": {"Day": {"S": "Mon"}, "High": {"N": "4"}, "Tags": {"SS": ["snow"]}}},
                {"M": {"Day": {"S": "Tue"}, "High": {"N": "-1.5"}, "Raw": {"B": "3q2+7w=="}}},
                {"L": [{"NULL": True}, {"BOOL": False}, {"NS": ["0"]}, {"BS": ["AA=="]}]},
            ]
        },
        "Station": {"M": {"Id": {"N": "1017"}, "Meta": {"M": {}}}},
    }
    assert attribute_map_json(image) == (
        '{"Location":"Oslo","Forecast":[{"Day":"Mon","High":4,"Tags":["snow"]},'
        '{"Day":"Tue","High":-1.5,"Raw":"3q2+7w=="},[null,false,[0],["AA=="]]],"Station":{"Id":1017,"Meta":{}}}'
    )


def test_an_empty_image_is_an_empty_object() -> None:
    assert attribute_map_json({}) == "{}"


# --- numbers keep their exact digits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digits",
    [
        "12345678901234567890.123456789",
        "-0.000001",
        "1E+40",
        "0",
        "99999999999999999999999999999999999999",  # 38 digits, DynamoDB's precision
        "-1.0000000000000000000000000000000000001E-130",
        "9.9999999999999999999999999999999999999E+125",
    ],
)
def test_numbers_keep_the_exact_digits_dynamodb_sent(digits: str) -> None:
    text = attribute_map_json({"n": {"N": digits}, "ns": {"NS": [digits]}, "l": {"L": [{"N": digits}]}})
    assert text == f'{{"n":{digits},"ns":[{digits}],"l":[{digits}]}}'
    assert loads(text) == {"n": Decimal(digits), "ns": [Decimal(digits)], "l": [Decimal(digits)]}


def test_a_float_would_have_lost_the_digits_that_are_kept() -> None:
    # guards the test above: the example is one a float round-trip cannot keep
    digits = "12345678901234567890.123456789"
    assert str(float(digits)) != digits
    assert attribute_value_json({"N": digits}) == digits


@pytest.mark.parametrize(("written", "value"), [("+1", "1"), (".5", "0.5"), ("1.", "1"), ("007", "7"), ("1e3", "1e3")])
def test_hand_written_numbers_become_valid_json_of_the_same_value(written: str, value: str) -> None:
    text = attribute_value_json({"N": written})
    assert loads(text) == Decimal(value)


# --- strings: compact UTF-8, control characters escaped ----------------------------------------------------------


def test_unicode_is_written_as_is_not_as_escapes() -> None:
    text = attribute_map_json({"Ort": {"S": "Zürich ☀ 東京 🌧"}, "Città": {"SS": ["Niño"]}})
    assert text == '{"Ort":"Zürich ☀ 東京 🌧","Città":["Niño"]}'
    assert "\\u" not in text
    assert loads(text.encode("utf-8").decode("utf-8")) == {"Ort": "Zürich ☀ 東京 🌧", "Città": ["Niño"]}


@pytest.mark.parametrize(
    "raw", ['say "hi"', "back\\slash", "line\nbreak\r\ttab", "\x00\x01\x1f\x7f", "\u2028\u2029", "</script>"]
)
def test_quotes_and_control_characters_round_trip(raw: str) -> None:
    text = attribute_map_json({raw: {"S": raw}, "list": {"SS": [raw]}})
    assert loads(text) == {raw: raw, "list": [raw]}
    assert not any(ord(char) < 0x20 for char in text), "a raw control character makes the JSON invalid"
    assert whitespace_outside_strings(text) == ""


@pytest.mark.parametrize("bad", ["\ud800", "ok \udfff"])
def test_strings_that_are_not_valid_unicode_are_malformed(bad: str) -> None:
    # DynamoDB strings are UTF-8; a lone surrogate (only a hand-made event can carry one) cannot be encoded
    for image in ({"s": {"S": bad}}, {"ss": {"SS": [bad]}}, {bad: {"N": "1"}}):
        with pytest.raises(InvalidAttributeValue):
            attribute_map_json(image)


# --- binary ------------------------------------------------------------------------------------------------------


def test_binary_stays_the_base64_text_of_the_stream() -> None:
    raw = bytes(range(256))
    encoded = base64.b64encode(raw).decode("ascii")
    assert loads(attribute_value_json({"B": encoded})) == encoded
    assert loads(attribute_value_json({"BS": [encoded, "AA=="]})) == [encoded, "AA=="]


def test_binary_already_decoded_to_bytes_is_encoded_to_base64() -> None:
    assert attribute_value_json({"B": b"\x00\xff"}) == '"AP8="'
    assert attribute_value_json({"BS": [b"\x01", bytearray(b"\x02")]}) == '["AQ==","Ag=="]'


# --- malformed values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"X": "1"},  # unknown type
        {},  # no type
        {"S": "a", "N": "1"},  # two types
        "plain string",
        None,
        ["S", "a"],
        {"S": 5},
        {"S": None},
        {"N": "NaN"},
        {"N": "Infinity"},
        {"N": "-inf"},
        {"N": "twelve"},
        {"N": ""},
        {"N": "1,5"},
        {"N": 1.5},  # a float has already lost digits
        {"N": None},
        {"BOOL": "true"},
        {"BOOL": 1},
        {"M": [1, 2]},
        {"M": "x"},
        {"M": {"a": "not an attribute value"}},
        {"M": {"a": {"N": "NaN"}}},
        {"L": {"N": "1"}},
        {"L": [{"N": "1"}, "x"]},
        {"SS": "sunny"},
        {"SS": ["a", 1]},
        {"NS": ["1", "x"]},
        {"NS": "1"},
        {"B": 12},
        {"B": None},
        {"BS": ["AA==", 3]},
        {"BS": "AA=="},
    ],
)
def test_malformed_values_raise_invalid_attribute_value(value: Any) -> None:
    with pytest.raises(InvalidAttributeValue):
        attribute_value_json(value)
    with pytest.raises(InvalidAttributeValue):
        attribute_map_json({"Location": {"S": "Oslo"}, "bad": value})


# --- strict types: exactly what DynamoDB sends --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"N": True},  # Decimal(True) would be 1
        {"N": False},
        {"N": 1},  # a JSON number, not the string DynamoDB sends
        {"N": " 1"},
        {"N": "1_000"},  # Decimal() reads underscores
        {"N": "\u0661\u0662"},  # Arabic-Indic digits: int() reads them, DynamoDB does not
        {"N": "1" * 39},  # more than 38 significant digits
        {"N": "1E+126"},
        {"N": "-1E+126"},
        {"N": "1E-131"},
        {"N": "1e99999999999999999999999999"},
        {"NS": [False, "2"]},  # would be [0, 2]
        {"NS": ["2", 3]},
        {"NS": []},
        {"SS": []},
        {"BS": []},
        {"B": "not base64!"},
        {"B": "abc"},  # missing padding
        {"B": "AA=A"},
        {"BS": ["AA==", "%%%%"]},
        {"BOOL": None},
        {"NULL": False},
        {"NULL": "true"},
        {"NULL": None},
        {"L": "x"},
    ],
)
def test_values_dynamodb_never_sends_are_malformed(value: Any) -> None:
    with pytest.raises(InvalidAttributeValue):
        attribute_value_json(value)


@pytest.mark.parametrize(
    "digits",
    ["1E-130", "-1E-130", "9.9999999999999999999999999999999999999E+125", "1" * 38, "0.00" + "1" * 38, "-0", "0E+5"],
)
def test_numbers_at_dynamodbs_limits_are_kept(digits: str) -> None:
    assert loads(attribute_value_json({"N": digits})) == Decimal(digits)


def _nested_map(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "leaf"}
    for _ in range(levels):
        value = {"M": {"inner": value}}
    return value


def test_nesting_is_limited_to_dynamodbs_32_levels() -> None:
    assert attribute_value_json(_nested_map(32)).count("{") == 32
    with pytest.raises(InvalidAttributeValue, match="nested deeper than DynamoDB's 32 levels"):
        attribute_value_json(_nested_map(33))
    deep_list: dict[str, Any] = {"N": "1"}
    for _ in range(5000):  # far past any recursion limit: refused at level 33, without a RecursionError
        deep_list = {"L": [deep_list]}
    with pytest.raises(InvalidAttributeValue, match="nested deeper"):
        attribute_value_json(deep_list)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ({"Stations": {"L": [{"N": "1"}, {"N": "2"}, {"N": True}]}}, "NewImage.Stations[2].N must be a string"),
        ({"Temps": {"NS": ["1", False]}}, "NewImage.Temps.NS[1] must be a string holding a number, got a boolean"),
        ({"Raw": {"B": "@@"}}, "NewImage.Raw.B must be base64 text"),
        ({"Meta": {"M": {"Station": {"M": {"Id": {"N": "x1"}}}}}}, "NewImage.Meta.Station.Id.N must be a string"),
        ({"Tags": {"SS": []}}, "NewImage.Tags.SS must not be empty"),
        ({"Odd": {"X": "1"}}, "NewImage.Odd.X is not a DynamoDB type"),
        ({"Flag": {"BOOL": "yes"}}, "NewImage.Flag.BOOL must be a boolean, got a string"),
        ({"Bad": "plain"}, "NewImage.Bad must be a DynamoDB attribute value (an object with one type), got a string"),
        ({"List": {"L": [{"S": "a"}, 3]}}, "NewImage.List[1] must be a DynamoDB attribute value"),
    ],
)
def test_errors_name_the_attribute_path_and_the_type(image: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidAttributeValue) as raised:
        attribute_map_json({"Location": {"S": "Oslo"}, **image}, where="dynamodb.NewImage")
    assert str(raised.value).startswith(f"dynamodb.{reason}")


@pytest.mark.parametrize(
    "value",
    [
        {"N": "secret-4711"},
        {"NS": ["1", "secret-4711"]},
        {"B": "secret-4711!"},
        {"S": "secret-4711\ud800"},
        {"BOOL": "secret-4711"},
        {"NULL": "secret-4711"},
        {"M": "secret-4711"},
        {"L": [{"X": "secret-4711"}]},
        {"X": "secret-4711"},
        {"S": "secret-4711", "N": "1"},
    ],
)
def test_errors_never_show_the_value(value: Any) -> None:
    with pytest.raises(InvalidAttributeValue) as raised:
        attribute_map_json({"Reading": value}, where="dynamodb.NewImage")
    text = str(raised.value)
    assert "secret-4711" not in text
    assert "Reading" in text


@pytest.mark.parametrize("image", [[], "x", None, [("a", {"S": "b"})]])
def test_an_image_must_be_a_map(image: Any) -> None:
    with pytest.raises(InvalidAttributeValue):
        attribute_map_json(image)


def test_attribute_names_must_be_strings() -> None:
    with pytest.raises(InvalidAttributeValue):
        attribute_map_json({1: {"S": "a"}})
    with pytest.raises(InvalidAttributeValue):
        attribute_value_json({"M": {None: {"S": "a"}}})


# --- projection --------------------------------------------------------------------------------------------------

IMAGE = {
    "Location": {"S": "Oslo"},
    "Temperature": {"N": "4"},
    "Conditions": {"S": "snow"},
    "ApiToken": {"S": "hidden"},
}


@pytest.mark.parametrize(
    ("include", "exclude", "names"),
    [
        (None, frozenset(), ["Location", "Temperature", "Conditions", "ApiToken"]),
        (frozenset({"Location", "Temperature"}), frozenset(), ["Location", "Temperature"]),
        (None, frozenset({"ApiToken"}), ["Location", "Temperature", "Conditions"]),
        (frozenset({"Location", "ApiToken"}), frozenset({"ApiToken"}), ["Location"]),  # exclusion wins
        (frozenset({"Missing"}), frozenset(), []),
        (None, frozenset({"Missing"}), ["Location", "Temperature", "Conditions", "ApiToken"]),
    ],
)
def test_projection_includes_and_excludes_attributes(
    include: frozenset[str] | None, exclude: frozenset[str], names: list[str]
) -> None:
    projected = project(IMAGE, include, exclude)
    assert list(projected) == names
    assert all(projected[name] == IMAGE[name] for name in names)
    assert list(IMAGE) == ["Location", "Temperature", "Conditions", "ApiToken"], "projection changed its input"


# --- json_object -------------------------------------------------------------------------------------------------


def test_json_object_embeds_raw_json_and_encodes_the_rest_compactly() -> None:
    text = json_object([("key", "Zürich"), ("image", RawJson('{"n":1.10}')), ("expired", False), ("n", None)])
    assert text == '{"key":"Zürich","image":{"n":1.10},"expired":false,"n":null}'


# --- property: the writer round-trips any attribute value exactly -------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(images)
def test_any_image_round_trips_through_json_loads_with_exact_numbers(image: dict[str, Any]) -> None:
    text = attribute_map_json(image)
    assert loads(text.encode("utf-8").decode("utf-8")) == {name: plain(value) for name, value in image.items()}
    assert whitespace_outside_strings(text) == ""


@settings(max_examples=100, deadline=None)
@given(numbers)
def test_any_number_round_trips_exactly(digits: str) -> None:
    assert loads(attribute_value_json({"N": digits})) == Decimal(digits)
