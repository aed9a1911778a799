"""Independent oracles: what the processor's outputs must mean, written without the processor's code."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def plain(value: dict[str, Any]) -> Any:
    """What a DynamoDB attribute value means as plain JSON, numbers as exact Decimals, binary as its base64 text."""
    ((kind, data),) = value.items()
    return {
        "S": lambda: data,
        "N": lambda: Decimal(data),
        "BOOL": lambda: data,
        "NULL": lambda: None,
        "M": lambda: {name: plain(member) for name, member in data.items()},
        "L": lambda: [plain(item) for item in data],
        "SS": lambda: list(data),
        "NS": lambda: [Decimal(item) for item in data],
        "B": lambda: data,
        "BS": lambda: list(data),
    }[kind]()
