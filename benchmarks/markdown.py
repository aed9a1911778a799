"""Markdown tables for the results file, and the summary table's row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Row", "table"]


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    figure: str
    measured: str
    compared_with: str = "—"
    ratio: str = "—"
    target: str = "—"
    result: str = "—"
    why: str = ""  # what explains the figure, reported when the target is missed


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (pipes inside cells escaped)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines
