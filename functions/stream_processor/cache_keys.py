"""Cache keys: the Momento key of an item, rendered from its DynamoDB key attributes only.

Only key attributes may be used, so that a REMOVE (which carries nothing but the keys) produces the same cache key as
the INSERT did. Key values render as text: S as is, N as its exact decimal text, B as its base64 text.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from stream_processor.changes import PoisonRecordError
from stream_processor.dynamodb_json import InvalidAttributeValue, binary_text, number_text

__all__ = ["CacheKeyBuilder", "KeyTemplateMismatch", "key_value_text"]


class KeyTemplateMismatch(LookupError):
    """KEY_TEMPLATE names an attribute the record's keys lack: a configuration problem, not a bad record."""

    def __init__(self, missing: str, available: tuple[str, ...]) -> None:
        self.missing = missing
        self.available = available
        super().__init__(
            f"KEY_TEMPLATE names {{{missing}}} but the table's key attributes are "
            f"{', '.join(available)}: use only key attributes (and {{table}})"
        )

    @property
    def cause(self) -> str:
        return str(self)


def key_value_text(value: Any) -> str:
    """The text of one key attribute value (S, N or B); other types cannot be DynamoDB keys."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, data),) = value.items()
        try:
            if kind == "S" and isinstance(data, str):
                data.encode("utf-8")  # a lone surrogate (hand-made event) has no UTF-8 form: no Momento key
                return data
            if kind == "N":
                return number_text(data)
            if kind == "B":
                return binary_text(data)
        except (InvalidAttributeValue, UnicodeEncodeError) as error:
            raise PoisonRecordError(f"malformed key value: {error}") from None
    raise PoisonRecordError(f"malformed record: key value {value!r:.80} is not an S, N or B attribute value")


class CacheKeyBuilder:
    """Renders cache keys from ``KEY_TEMPLATE`` or, without one, the key values ordered by name joined with '#'."""

    def __init__(self, template: str | None) -> None:
        self.template = template
        self._fields = (
            tuple(field for _, field, _, _ in string.Formatter().parse(template) if field) if template else ()
        )

    def cache_key(self, table: str, keys: Mapping[str, Any]) -> str:
        """The cache key of the item with these key attributes in ``table``."""
        if self.template is None:
            return "#".join(key_value_text(keys[name]) for name in sorted(keys))
        values: dict[str, str] = {}
        for field in self._fields:
            if field == "table":
                values[field] = table
            elif field in keys:
                values[field] = key_value_text(keys[field])
            else:
                raise KeyTemplateMismatch(field, tuple(sorted(keys)))
        return self.template.format_map(values)
