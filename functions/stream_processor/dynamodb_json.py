"""DynamoDB attribute values (the stream's typed JSON) to compact plain JSON text, numbers kept exact.

boto3's ``TypeDeserializer`` turns numbers into ``Decimal`` and the standard ``json`` module cannot write a Decimal
without going through float, which loses digits (``12345678901234567890.123456789``). So attribute values are written
straight to JSON text here: N keeps the exact digits DynamoDB sent, B and BS stay the base64 text the stream carries,
S/BOOL/NULL/M/L/SS/NS map to their JSON counterparts.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "InvalidAttributeValue",
    "RawJson",
    "attribute_map_json",
    "attribute_value_json",
    "json_object",
    "number_text",
    "project",
]

AttributeValue = Mapping[str, Any]
AttributeMap = Mapping[str, AttributeValue]

_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]  # UTF-8 output: no \u escapes
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")


class InvalidAttributeValue(ValueError):
    """An attribute value is not a well-formed DynamoDB attribute value."""


class RawJson(str):
    """JSON text that ``json_object`` embeds as is (already encoded)."""

    __slots__ = ()


def number_text(value: Any) -> str:
    """The JSON text of a DynamoDB number with its exact digits (never through float)."""
    if isinstance(value, str) and _JSON_NUMBER.match(value):
        return value
    # DynamoDB sends normalised numbers; anything else (hand-written events: "+1", ".5", "1.") is normalised here.
    try:
        number = Decimal(value) if isinstance(value, (str, int)) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise InvalidAttributeValue(f"N value {value!r} is not a number")
    text = str(number)
    if not _JSON_NUMBER.match(text):  # pragma: no cover - str(Decimal) of a finite number is always JSON
        raise InvalidAttributeValue(f"N value {value!r} is not a number")
    return text


def binary_text(value: Any) -> str:
    """The base64 text of a B value: as the stream sends it, or encoded when boto3 already decoded it to bytes."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    value = getattr(value, "value", None)  # boto3.dynamodb.types.Binary
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise InvalidAttributeValue("B value is neither base64 text nor bytes")


def attribute_value_json(value: AttributeValue) -> str:
    """One attribute value as compact JSON text."""
    out: list[str] = []
    _write_value(value, out)
    return "".join(out)


def attribute_map_json(image: AttributeMap) -> str:
    """An item image (attribute name to attribute value) as a compact JSON object."""
    if not isinstance(image, Mapping):
        raise InvalidAttributeValue("an item image must be a map of attribute names to attribute values")
    out: list[str] = []
    _write_map(image, out)
    return "".join(out)


def project(image: AttributeMap, include: frozenset[str] | None, exclude: frozenset[str]) -> AttributeMap:
    """The image restricted to ``include`` (when given) and without ``exclude``."""
    if include is None and not exclude:
        return image
    return {
        name: value for name, value in image.items() if (include is None or name in include) and name not in exclude
    }


def json_object(members: Iterable[tuple[str, Any]]) -> str:
    """A compact JSON object from (name, value) pairs; ``RawJson`` values are embedded as they are."""
    parts = []
    for name, value in members:
        encoded = value if isinstance(value, RawJson) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        parts.append(f"{_encode_string(name)}:{encoded}")
    return "{" + ",".join(parts) + "}"


def _write_map(image: AttributeMap, out: list[str]) -> None:
    out.append("{")
    first = True
    for name, value in image.items():
        if not isinstance(name, str):
            raise InvalidAttributeValue(f"attribute name {name!r} is not a string")
        _check_unicode(name, "attribute name")
        if not first:
            out.append(",")
        first = False
        out.append(_encode_string(name))
        out.append(":")
        try:
            _write_value(value, out)
        except InvalidAttributeValue as error:
            raise InvalidAttributeValue(f"attribute {name!r}: {error}") from None
    out.append("}")


def _write_list(values: Any, out: list[str], write_item) -> None:
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise InvalidAttributeValue("a list or set value must be an array")
    out.append("[")
    for index, item in enumerate(values):
        if index:
            out.append(",")
        write_item(item, out)
    out.append("]")


def _write_value(value: AttributeValue, out: list[str]) -> None:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise InvalidAttributeValue(f"{value!r:.80} is not a DynamoDB attribute value (one type, one value)")
    ((kind, data),) = value.items()
    if kind == "S":
        if not isinstance(data, str):
            raise InvalidAttributeValue("S value is not a string")
        _check_unicode(data, "S value")
        out.append(_encode_string(data))
    elif kind == "N":
        out.append(number_text(data))
    elif kind == "BOOL":
        if not isinstance(data, bool):
            raise InvalidAttributeValue("BOOL value is not a boolean")
        out.append("true" if data else "false")
    elif kind == "NULL":
        out.append("null")
    elif kind == "M":
        if not isinstance(data, Mapping):
            raise InvalidAttributeValue("M value is not a map")
        _write_map(data, out)
    elif kind == "L":
        _write_list(data, out, _write_value)
    elif kind == "SS":
        _write_list(data, out, _write_set_string)
    elif kind == "NS":
        _write_list(data, out, lambda item, sink: sink.append(number_text(item)))
    elif kind == "B":
        out.append(_encode_string(binary_text(data)))
    elif kind == "BS":
        _write_list(data, out, lambda item, sink: sink.append(_encode_string(binary_text(item))))
    else:
        raise InvalidAttributeValue(f"unknown DynamoDB type {kind!r}")


def _write_set_string(item: Any, out: list[str]) -> None:
    if not isinstance(item, str):
        raise InvalidAttributeValue("SS member is not a string")
    _check_unicode(item, "SS member")
    out.append(_encode_string(item))


def _check_unicode(text: str, what: str) -> None:
    """Reject text that has no UTF-8 form (a lone surrogate, possible only in a hand-made event)."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAttributeValue(f"{what} is not valid Unicode text (lone surrogate)") from None
