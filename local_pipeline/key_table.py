"""The report's key table: each key's item in the table next to its cache entry, as a forecast a person can read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.markup import escape
from rich.table import Table

from local_pipeline.comparison import Comparison, KeyState, TableState
from local_pipeline.run_result import CACHE_NAME, TABLE_NAME
from local_pipeline.weather import TTL_ATTRIBUTE

__all__ = ["key_table"]

_MAX_DIFFERING_SHOWN = 20


def key_table(comparison: Comparison, show: int, now: float, title: str) -> Table:
    states = comparison.keys[:show]
    shown = {state.key for state in states}
    states += [state for state in comparison.differing if state.key not in shown][:_MAX_DIFFERING_SHOWN]
    table = Table(title=f"{title} ({len(states)} of {len(comparison.keys)} keys)", title_justify="left")
    table.add_column("Key")
    table.add_column(f"Table ({TABLE_NAME})")
    table.add_column(f"Cache ({CACHE_NAME})")
    table.add_column("Equal", justify="center")
    for state in states:
        table.add_row(
            escape(state.key),
            _table_cell(state, now),
            _cache_cell(state, now),
            "[green]✓[/]" if state.equal else "[red]✗[/]",
        )
    return table


def _table_cell(state: KeyState, now: float) -> str:
    if state.table_state is TableState.ABSENT:
        return "[dim]absent[/]"
    text = _forecast(state.table_item or {}, now)
    if state.table_state is TableState.EXPIRED:
        return f"[dim]{text} (still in table)[/]"
    return text


def _cache_cell(state: KeyState, now: float) -> str:
    if state.cache_error is not None:
        return f"[red]unreadable: {escape(state.cache_error)}[/]"
    if state.cache_item is None:
        return "[dim]absent[/]"
    return _forecast(state.cache_item, now)


def _forecast(item: dict[str, Any], now: float) -> str:
    text = f"{_value(item, 'MaxTemp')}/{_value(item, 'MinTemp')} °C, {_value(item, 'ChancesOfPrecipitation')}% rain"
    expires_at = item.get(TTL_ATTRIBUTE)
    if expires_at is None:
        return text + ", no TTL"
    remaining = float(expires_at) - now
    if remaining <= 0:
        return text + f", expired {_duration(-remaining)} ago"
    return text + f", expires in {_duration(remaining)}"


def _value(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return "?" if value is None else str(value)


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{max(1, round(seconds / 60))} min"
