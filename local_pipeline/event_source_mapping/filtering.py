"""Event filtering: a mapping's ``FilterCriteria``, applied to stream records before batching, as Lambda does.

Lambda takes up to 5 filters by default (ORed), each a JSON pattern of at most 4,096 characters in EventBridge's
pattern syntax, and matches them against the record as it appears in the event: ``eventName``, ``dynamodb.Keys``,
``dynamodb.NewImage`` and ``OldImage`` in DynamoDB's typed JSON (numbers are strings there), ... A record that no
filter matches is dropped before batching: never delivered, and checkpointed like a processed record. The matching is
moto's EventBridge pattern engine (``moto.events.models.EventPattern``), not a hand-written one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moto.events.exceptions import InvalidEventPatternException
from moto.events.models import EventPattern

__all__ = ["MAX_FILTERS", "MAX_PATTERN_LENGTH", "FilterCriteria"]

MAX_FILTERS = 5  # Lambda's default quota (raisable to 10 on request)
MAX_PATTERN_LENGTH = 4096  # Lambda API: Filter.Pattern


@dataclass(frozen=True)
class FilterCriteria:
    """Compiled filter patterns; no patterns let every record through."""

    patterns: tuple[EventPattern, ...] = ()

    @classmethod
    def from_patterns(cls, patterns: Sequence[str]) -> FilterCriteria:
        """Compile the patterns, checked as Lambda checks them; a ValueError names ``filter_patterns``."""
        if isinstance(patterns, str | bytes) or not isinstance(patterns, Sequence):
            raise ValueError(f"filter_patterns must be a sequence of JSON pattern strings, got {patterns!r}")
        if len(patterns) > MAX_FILTERS:
            raise ValueError(f"filter_patterns: at most {MAX_FILTERS} filters, got {len(patterns)}")
        return cls(tuple(_compile(index, pattern) for index, pattern in enumerate(patterns)))

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether Lambda would deliver this record (in the event's shape)."""
        return not self.patterns or any(pattern.matches_event(dict(record)) for pattern in self.patterns)


def _compile(index: int, pattern: object) -> EventPattern:
    where = f"filter_patterns[{index}]"
    if not isinstance(pattern, str):
        raise ValueError(f"{where} must be a JSON string, got {pattern!r}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"{where} is {len(pattern)} characters long, more than {MAX_PATTERN_LENGTH}")
    try:
        document = json.loads(pattern)
    except ValueError as error:
        raise ValueError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{where} must be a JSON object, got {pattern!r}")
    try:
        return EventPattern.load(pattern)
    except InvalidEventPatternException as error:
        raise ValueError(f"{where}: {error.message}") from None
