"""DynamoDB attribute values (the stream's typed JSON) to compact plain JSON text, numbers kept exact, types strict.

boto3's ``TypeDeserializer`` turns numbers into ``Decimal`` and the standard ``json`` module cannot write a Decimal
without going through float, which loses digits (``12345678901234567890.123456789``). So attribute values are written
straight to JSON text here: N keeps the exact digits DynamoDB sent, B and BS stay the base64 text the stream carries,
S/BOOL/NULL/M/L/SS/NS map to their JSON counterparts.

Values are checked exactly as DynamoDB sends them: N and NS members are strings holding a DynamoDB number (at most 38
significant digits, magnitude 1E-130 to 9.99...E+125), B and BS members base64 text, BOOL a boolean, NULL true, sets
non-empty, nesting at most 32 levels. Anything else raises ``InvalidAttributeValue`` whose text names the attribute
path and the JSON type found, never the value (reasons reach log lines and the dead-letter queue).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "MAX_NESTING",
    "InvalidAttributeValue",
    "RawJson",
    "attribute_map_json",
    "attribute_value_json",
    "binary_text",
    "is_json_object",
    "json_object",
    "json_type",
    "number_text",
    "path_name",
    "project",
]

AttributeValue = Mapping[str, Any]
AttributeMap = Mapping[str, AttributeValue]

#: DynamoDB's limit on nested attribute depth (maps and lists inside maps and lists).
MAX_NESTING = 32
_MAX_DIGITS = 38
_MIN_EXPONENT, _MAX_EXPONENT = -130, 125

_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]  # UTF-8 output: no \u escapes
# One encoder for the other values (json.dumps with arguments would build a new one per call).
_encode_other = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\Z")
# What DynamoDB accepts as number text (hand-written events: "+1", ".5", "1.", "007"); ASCII digits only.
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
_SET_KINDS = frozenset({"SS", "NS", "BS"})


class InvalidAttributeValue(ValueError):
    """An attribute value is not a well-formed DynamoDB attribute value.

    ``path`` locates it (``.Stations[2].N``, relative to where the writing started), ``problem`` says what is wrong
    with it; neither ever holds the value itself.
    """

    def __init__(self, problem: str, path: str = "") -> None:
        self.problem = problem
        self.path = path
        super().__init__(f"{path.lstrip('.')} {problem}" if path else problem)

    def within(self, prefix: str) -> InvalidAttributeValue:
        """The same problem, located under ``prefix`` (an attribute name segment, a list index, an image name)."""
        return InvalidAttributeValue(self.problem, prefix + self.path)


class RawJson(str):
    """JSON text that ``json_object`` embeds as is (already encoded)."""

    __slots__ = ()


def json_type(value: Any) -> str:
    """The JSON type of a value, with its article, for error texts that must not show the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def is_json_object(value: Any) -> bool:
    """Whether a value is a JSON object: a dict (what json.loads gives, checked first because an isinstance check
    against the Mapping ABC costs several times more) or any other Mapping."""
    return type(value) is dict or isinstance(value, Mapping)


def path_name(name: Any) -> str:
    """An attribute name as a path segment: as is when printable, escaped otherwise, at most 64 characters."""
    text = name if isinstance(name, str) and name.isprintable() and name else ascii(name)
    return text if len(text) <= 64 else text[:63] + "…"


def number_text(value: Any) -> str:
    """The JSON text of a DynamoDB number (N) with its exact digits (never through float)."""
    if not isinstance(value, str):
        raise InvalidAttributeValue(f"must be a string holding a number, got {json_type(value)}")
    if len(value) <= 40 and _PLAIN_NUMBER.match(value):
        digits = len(value) - value.startswith("-") - ("." in value)
        if digits <= _MAX_DIGITS:  # so at most 38 significant digits and well inside DynamoDB's magnitude range
            return value
    if not _NUMBER_TEXT.match(value):
        raise InvalidAttributeValue("must be a string holding a number, got a string that is not a number")
    try:
        number = Decimal(value)
    except InvalidOperation:  # an exponent too large to represent at all
        raise InvalidAttributeValue("is a number outside DynamoDB's range (1E-130 to 9.99E+125)") from None
    if number:
        significant = "".join(map(str, number.as_tuple().digits)).strip("0")
        if len(significant) > _MAX_DIGITS:
            raise InvalidAttributeValue(f"is a number with more than {_MAX_DIGITS} significant digits")
        if not _MIN_EXPONENT <= number.adjusted() <= _MAX_EXPONENT:
            raise InvalidAttributeValue("is a number outside DynamoDB's range (1E-130 to 9.99E+125)")
    # DynamoDB sends normalised numbers, kept as they are; hand-written ones ("+1", ".5") are normalised here.
    return value if _JSON_NUMBER.match(value) else str(number)


def binary_text(value: Any) -> str:
    """The base64 text of a B value: as the stream sends it, or encoded when boto3 already decoded it to bytes."""
    if isinstance(value, str):
        if not _BASE64.match(value):
            raise InvalidAttributeValue("must be base64 text, got a string that is not base64")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):  # table reads: boto3 decodes B to bytes
        return base64.b64encode(bytes(value)).decode("ascii")
    raw = getattr(value, "value", None)  # boto3.dynamodb.types.Binary
    if isinstance(raw, bytes):
        return base64.b64encode(raw).decode("ascii")
    raise InvalidAttributeValue(f"must be base64 text, got {json_type(value)}")


def attribute_value_json(value: AttributeValue) -> str:
    """One attribute value as compact JSON text."""
    out: list[str] = []
    _write_value(value, out, 0)
    return "".join(out)


def attribute_map_json(image: AttributeMap, where: str = "") -> str:
    """An item image (attribute name to attribute value) as a compact JSON object.

    ``where`` names the image in errors (``dynamodb.NewImage``): the error path then starts there.
    """
    if not isinstance(image, Mapping):
        raise InvalidAttributeValue(f"must be a map of attribute names to values, got {json_type(image)}", where)
    out: list[str] = []
    try:
        _write_map(image, out, 0)
    except InvalidAttributeValue as error:
        raise error.within(where) from None
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
        kind = type(value)  # exact types first: the common members, without the general encoder
        if kind is RawJson:
            encoded = str(value)
        elif kind is str:
            encoded = _encode_string(value)
        elif kind is bool:
            encoded = "true" if value else "false"
        elif kind is int:
            encoded = int.__repr__(value)  # as json writes an int
        else:
            encoded = _encode_other(value)
        parts.append(f"{_encode_string(name)}:{encoded}")
    return "{" + ",".join(parts) + "}"


def _write_map(image: AttributeMap, out: list[str], depth: int) -> None:
    out.append("{")
    first = True
    for name, value in image.items():
        if not isinstance(name, str):
            raise InvalidAttributeValue(f"has an attribute name that is {json_type(name)}, not a string")
        if not first:
            out.append(",")
        first = False
        try:
            if not name.isascii():
                _check_unicode(name, "is an attribute name that is not valid Unicode text (lone surrogate)")
            out.append(_encode_string(name))
            out.append(":")
            _write_value(value, out, depth)
        except InvalidAttributeValue as error:
            raise error.within(f".{path_name(name)}") from None
    out.append("}")


def _write_value(value: AttributeValue, out: list[str], depth: int) -> None:
    if not is_json_object(value) or len(value) != 1:
        what = f"an object with {len(value)} members" if isinstance(value, Mapping) else json_type(value)
        raise InvalidAttributeValue(f"must be a DynamoDB attribute value (an object with one type), got {what}")
    ((kind, data),) = value.items()
    try:
        if kind == "S":
            if type(data) is str and data.isascii():  # the common case, without _write_text's checks
                out.append(_encode_string(data))
            else:
                _write_text(data, out)
        elif kind == "N":
            out.append(number_text(data))
        elif kind == "B":
            out.append(_encode_string(binary_text(data)))
        elif kind == "BOOL":
            if not isinstance(data, bool):
                raise InvalidAttributeValue(f"must be a boolean, got {json_type(data)}")
            out.append("true" if data else "false")
        elif kind == "NULL":
            if data is not True:
                raise InvalidAttributeValue(f"must be true, got {'false' if data is False else json_type(data)}")
            out.append("null")
        elif kind == "M":
            if not isinstance(data, Mapping):
                raise InvalidAttributeValue(f"must be a map, got {json_type(data)}")
            _check_depth(depth)
            _write_map(data, out, depth + 1)
        elif kind == "L":
            if not isinstance(data, (list, tuple)):
                raise InvalidAttributeValue(f"must be a list, got {json_type(data)}")
            _check_depth(depth)
            out.append("[")
            for index, item in enumerate(data):
                if index:
                    out.append(",")
                try:
                    _write_value(item, out, depth + 1)
                except InvalidAttributeValue as error:
                    raise error.within(f"[{index}]") from None
            out.append("]")
        elif kind in _SET_KINDS:
            _write_set(kind, data, out)
        else:
            raise InvalidAttributeValue("is not a DynamoDB type (S, N, B, BOOL, NULL, M, L, SS, NS or BS)")
    except InvalidAttributeValue as error:
        if error.path:
            raise  # a member's problem (map, list, set): its path already says where
        raise error.within(f".{path_name(kind)}") from None


def _write_text(data: Any, out: list[str]) -> None:
    """An S value or SS member: text with a UTF-8 form."""
    if not isinstance(data, str):
        raise InvalidAttributeValue(f"must be a string, got {json_type(data)}")
    _check_unicode(data, "is not valid Unicode text (lone surrogate)")
    out.append(_encode_string(data))


def _write_set(kind: str, members: Any, out: list[str]) -> None:
    if not isinstance(members, (list, tuple)):
        raise InvalidAttributeValue(f"must be a list of set members, got {json_type(members)}")
    if not members:
        raise InvalidAttributeValue("must not be empty (DynamoDB sets have at least one member)")
    out.append("[")
    for index, member in enumerate(members):
        if index:
            out.append(",")
        try:
            if kind == "SS":
                _write_text(member, out)
            elif kind == "NS":
                out.append(number_text(member))
            else:
                out.append(_encode_string(binary_text(member)))
        except InvalidAttributeValue as error:
            raise error.within(f".{kind}[{index}]") from None
    out.append("]")


def _check_depth(depth: int) -> None:
    if depth >= MAX_NESTING:
        raise InvalidAttributeValue(f"is nested deeper than DynamoDB's {MAX_NESTING} levels")


def _check_unicode(text: str, problem: str) -> None:
    """Reject text that has no UTF-8 form (a lone surrogate, possible only in a hand-made event)."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAttributeValue(problem) from None
