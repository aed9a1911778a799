"""Hypothesis strategies: DynamoDB attribute values exactly as DynamoDB sends them, and any JSON at all.

``attribute_values`` / ``images`` hold only what DynamoDB can send (numbers of at most 38 significant digits within
1E-130 to 9.99E+125, base64 binaries, non-empty sets of distinct members, text without lone surrogates).
``any_json`` is whatever a JSON parser can hand the handler: every JSON type, text with lone surrogates and control
characters, huge integers, deep nesting.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

__all__ = ["any_json", "any_text", "attribute_values", "base64_text", "images", "numbers", "texts"]


def _number(sign: str, mantissa: int, adjusted: int, plain: bool) -> str:
    digits = str(mantissa)
    if plain:
        return f"{sign}{digits}"
    # DynamoDB's own text for a number: Decimal's scientific or plain form, whichever it picks
    return str(Decimal(f"{sign}{digits}E{adjusted - len(digits) + 1}"))


#: DynamoDB numbers as the stream sends them: up to 38 significant digits, magnitude 1E-130 to 9.99E+125.
numbers = st.one_of(
    st.builds(
        _number,
        st.sampled_from(["", "-"]),
        st.integers(1, 10**38 - 1),
        st.integers(-130, 125),
        st.booleans(),
    ).filter(lambda text: -130 <= Decimal(text).adjusted() <= 125),
    st.integers(-(10**15), 10**15).map(str),
    st.sampled_from(
        ["0", "-0", "12345678901234567890.123456789", "1E-130", "-9.9999999999999999999999999999999999999E+125"]
    ),
)
#: Any Unicode text DynamoDB can hold (control characters included; no lone surrogates).
texts = st.text(max_size=8)
#: Any text a JSON parser can produce, lone surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=8)
base64_text = st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode("ascii"))


def _set(kind: str, members: list[Any]) -> dict[str, list[Any]]:
    return {kind: sorted(set(members))}


scalars = st.one_of(
    st.builds(lambda s: {"S": s}, texts),
    st.builds(lambda n: {"N": n}, numbers),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.builds(lambda: {"NULL": True}),  # a new object each time: tests mutate records
    st.builds(lambda b: {"B": b}, base64_text),
    st.builds(lambda ss: _set("SS", ss), st.lists(texts, min_size=1, max_size=3)),
    st.builds(lambda ns: {"NS": list(dict.fromkeys(ns))}, st.lists(numbers, min_size=1, max_size=3)),
    st.builds(lambda bs: _set("BS", bs), st.lists(base64_text, min_size=1, max_size=3)),
)
attribute_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.builds(lambda items: {"L": items}, st.lists(children, max_size=3)),
        st.builds(lambda members: {"M": dict(members)}, st.lists(st.tuples(texts, children), max_size=3)),
    ),
    max_leaves=8,
)
images = st.lists(st.tuples(st.text(min_size=1, max_size=8), attribute_values), max_size=5).map(dict)

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**60), 10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
)
#: Any JSON value (as ``json.loads`` returns it), lone surrogates and huge integers included.
any_json = st.recursive(
    _json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(any_text, children, max_size=3)),
    max_leaves=10,
)


def nested(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` levels of JSON arrays: deeper than any recursion a handler may do on it."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf
