"""Cache keys: the Momento key of an item, rendered from its DynamoDB key attributes only.

Only key attributes may be used, so that a REMOVE (which carries nothing but the keys) produces the same cache key as
the INSERT did. Key values render as text: S as is, N as its exact decimal text, B as its base64 text.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from stream_processor.changes import PoisonRecordError
from stream_processor.dynamodb_json import (
    InvalidAttributeValue,
    binary_text,
    is_json_object,
    json_type,
    number_text,
    path_name,
)

__all__ = ["CacheKeyBuilder", "KeyTemplateMismatch", "key_value_text"]


class KeyTemplateMismatch(LookupError):
    """KEY_TEMPLATE names an attribute the record's keys lack: a configuration problem, not a bad record."""

    def __init__(self, missing: str, available: tuple[str, ...]) -> None:
        self.missing = missing
        self.available = available
        super().__init__(
            f"KEY_TEMPLATE names {{{missing}}} but the table's key attributes are "
            f"{', '.join(map(path_name, available))}: use only key attributes (and {{table}})"
        )

    @property
    def cause(self) -> str:
        return str(self)


def key_value_text(value: Any, name: str = "") -> str:
    """The text of one key attribute value (S, N or B, never empty); other types cannot be DynamoDB keys.

    ``name`` is the key attribute's name, for the reason of a ``PoisonRecordError`` (which never shows the value).
    """
    if is_json_object(value) and len(value) == 1:
        ((kind, data),) = value.items()
        try:
            if kind == "S" and isinstance(data, str):
                data.encode("utf-8")  # a lone surrogate (hand-made event) has no UTF-8 form: no Momento key
                text = data
            elif kind == "N":
                text = number_text(data)
            elif kind == "B":
                text = binary_text(data)
            else:
                text = None
        except InvalidAttributeValue as error:
            raise PoisonRecordError(f"malformed record: {_where(name)}.{kind} {error.problem}") from None
        except UnicodeEncodeError:
            reason = f"{_where(name)}.S is not valid Unicode text (lone surrogate)"
            raise PoisonRecordError(f"malformed record: {reason}") from None
        if text == "":
            raise PoisonRecordError(f"malformed record: {_where(name)}.{kind} is empty (DynamoDB key values never are)")
        if text is not None:
            return text
    reason = f"{_where(name)} must be an S, N or B attribute value, got {_key_type(value)}"
    raise PoisonRecordError(f"malformed record: {reason}")


def _where(name: str) -> str:
    return f"dynamodb.Keys.{path_name(name)}" if name else "a key value"


def _key_type(value: Any) -> str:
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, data),) = value.items()
        return f"{path_name(kind)} holding {json_type(data)}"
    return json_type(value)


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
            if len(keys) == 1:  # the common case (a table without a sort key), without the sort and join
                ((name, value),) = keys.items()
                return key_value_text(value, name)
            return "#".join(key_value_text(keys[name], name) for name in sorted(keys))
        values: dict[str, str] = {}
        for field in self._fields:
            if field == "table":
                values[field] = table
            elif field in keys:
                values[field] = key_value_text(keys[field], field)
            else:
                raise KeyTemplateMismatch(field, tuple(sorted(map(str, keys))))
        return self.template.format_map(values)
