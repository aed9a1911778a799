"""Reading `make invoke`'s printout back: its labelled blocks, the cache entries and the messages it lists."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

LABEL_WIDTH = 11
_CACHE_ENTRY = re.compile(r"^  (?P<key>\S+)  (?:TTL (?P<ttl>\d+) s|no TTL)  (?P<value>.*)$")


def blocks(output: str) -> dict[str, list[str]]:
    """Each label's lines, without the label column; an unlabelled line continues the block above it."""
    found: dict[str, list[str]] = {}
    label = ""
    for line in output.splitlines():
        head, text = line[:LABEL_WIDTH].strip(), line[LABEL_WIDTH:]
        if head:
            label = head
        found.setdefault(label, []).append(text)
    return found


def cache_entries(output: str) -> dict[str, tuple[dict[str, Any], int | None]]:
    """The cache entries printed: key to (value with exact numbers, TTL seconds)."""
    entries = {}
    for line in blocks(output)["Cache"][1:]:
        match = _CACHE_ENTRY.match(line)
        if match:
            ttl = match["ttl"]
            value = json.loads(match["value"], parse_float=Decimal, parse_int=Decimal)
            entries[match["key"]] = (value, int(ttl) if ttl else None)
    return entries


def messages(output: str) -> list[dict[str, Any]]:
    """The topic messages printed, in order."""
    return [json.loads(line) for line in blocks(output)["Topic"][1:] if line.startswith("  {")]


def response(output: str) -> Any:
    return json.loads(blocks(output)["Response"][0])
