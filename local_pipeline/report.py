"""The report of a local run, rendered with rich: what was written, processed, cached, published and dead-lettered.

It ends with the verdict the exit status follows: every key's cache entry equals the table's item (an item past its
TTL counts as absent), or which keys differ and why.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from local_pipeline.comparison import Comparison, KeyState, TableState
from local_pipeline.demo import CACHE_NAME, TABLE_NAME, TOPIC_NAME, DemoResult, TopicTally
from local_pipeline.weather import TTL_ATTRIBUTE, WriteKind

__all__ = ["render"]

_MAX_DIFFERING_SHOWN = 20


def render(result: DemoResult, console: Console) -> None:
    """Print the whole report."""
    options = result.options
    console.print()
    console.print(
        Text.assemble(
            ("Local pipeline run", "bold"),
            f"  seed {options.seed} · {options.changes} changes over {options.keys} keys · BatchSize "
            f"{options.batch_size} · MaximumRetryAttempts {options.max_retries} · timeout {options.timeout_seconds} s"
            f" · fault rate {options.fault_rate:.0%}",
        )
    )
    console.print(
        "DynamoDB table (moto, NEW_AND_OLD_IMAGES stream) → event source mapping emulator → "
        "stream_processor.app.handler → local Momento server (real SDK over gRPC) → topic subscriber",
        style="dim",
    )
    console.print(_summary(result))
    console.print(_dead_letter_table(result))
    console.print(_key_table(result.comparison, result.options.show, result.compared_at, "Cache against table"))
    _verdict(console, result.comparison, result, after_redrive=False)
    if result.redrive_unavailable:
        console.print(f"[yellow]{result.redrive_unavailable}[/]")
    if result.redrive is not None:
        redrive = result.redrive
        console.print()
        console.print("[bold]Redrive[/] (faults stopped first: fix the cause, then redrive)")
        console.print(Text(redrive.summary_text), style="dim")
        console.print(_topic_line(redrive.topic, result, after_redrive=True))
        if redrive.dead_letters:
            console.print(f"DLQ after the redrive: {len(redrive.dead_letters)} messages still there")
        differing = {state.key for state in result.comparison.differing}
        shown = [state for state in redrive.comparison.keys if state.key in differing]
        if shown:
            console.print(_key_table(Comparison(shown), len(shown), result.compared_at, "Keys that differed, now"))
        _verdict(console, redrive.comparison, result, after_redrive=True)
    for note in result.notes:
        console.print(note)
    console.print()
    console.print(f"Handler logs (Powertools JSON lines and EMF metrics): {result.log_path}", style="dim")
    console.print(f"Finished in {result.elapsed_seconds:.1f} s.", style="dim")


def _summary(result: DemoResult) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    written = result.written
    kinds = " · ".join(f"{written[kind]} {kind.value}s" for kind in WriteKind if written[kind])
    grid.add_row(
        "Workload",
        f'{result.changes_written} changes written to table "{TABLE_NAME}" (Location key, TTL attribute '
        f"{TTL_ATTRIBUTE}): {kinds}",
    )
    mapping = result.mapping
    processed = f"{len(result.changes)} of {result.changes_written} changes processed"
    if not result.all_delivered:
        processed = f"[red]{processed}[/]"
    grid.add_row(
        "Stream",
        f"{processed} in {mapping.invocations} invocations · batch retries {mapping.batches_retried} · "
        f"bisections {mapping.bisections} · records sent to the DLQ {mapping.records_sent_to_on_failure_destination}"
        + ("" if mapping.caught_up else " · [red]stopped before catching up[/]"),
    )
    handler = result.handler
    grid.add_row(
        "Handler",
        f"cache sets {handler.sets} · deletes {handler.deletes} · publishes {handler.publishes} · superseded writes "
        f"{handler.superseded_writes} · retries with backoff {handler.retries} · records reported failed "
        f"{handler.failures} · "
        f"poison {handler.poison_records}",
    )
    grid.add_row("Momento calls", _counts(result.momento_calls) or "none")
    faults = _counts(result.injected_faults)
    if faults:
        faults += (
            f" ({sum(result.injected_faults.values())} in all: UNAVAILABLE, DEADLINE_EXCEEDED after the write took "
            "effect, RESOURCE_EXHAUSTED rate limits; the SDK retries UNAVAILABLE sets and deletes itself, at once)"
        )
    grid.add_row("Injected faults", faults or "none")
    grid.add_row("Topic", _topic_line(result.topic, result, after_redrive=False))
    return grid


def _topic_line(topic: TopicTally, result: DemoResult, *, after_redrive: bool) -> str:
    total = len(result.changes)
    line = (
        f"{topic.accepted_by_server} messages published to {CACHE_NAME}/{TOPIC_NAME}, {topic.received} received by "
        f"the subscriber: {topic.distinct_changes} of {total} changes at least once"
    )
    if topic.duplicates:
        line += f" ({topic.duplicates} duplicates: a publish that timed out after taking effect is retried; deduplicate on eventID)"
    if topic.redriven:
        line += f", {topic.redriven} redriven"
    if topic.never_published:
        line += f"; [yellow]{len(topic.never_published)} changes never published[/]"
        if not after_redrive:
            line += " (changes in batches that went to the DLQ; the redrive publishes them)"
    if topic.received < topic.accepted_by_server:
        line += f"; [red]{topic.accepted_by_server - topic.received} messages did not reach the subscriber[/]"
    return line


def _dead_letter_table(result: DemoResult) -> Table | Text:
    if not result.dead_letters:
        return Text.assemble(("DLQ", "bold"), "  empty: no batch ran out of retries, no poison record")
    table = Table(title=f"Dead-letter queue: {len(result.dead_letters)} messages", title_justify="left")
    table.add_column("Kind")
    table.add_column("Records", justify="right")
    table.add_column("What")
    table.add_column("Keys affected")
    for letter in result.dead_letters:
        table.add_row(letter.kind, str(letter.records), letter.detail, ", ".join(letter.keys))
    return table


def _key_table(comparison: Comparison, show: int, now: float, title: str) -> Table:
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
            state.key,
            _table_cell(state, now),
            _cache_cell(state, now),
            "[green]✓[/]" if state.equal else "[red]✗[/]",
        )
    return table


def _table_cell(state: KeyState, now: float) -> str:
    if state.table_state is TableState.ABSENT:
        return "[dim]absent (deleted)[/]"
    text = _forecast(state.table_item or {}, now)
    if state.table_state is TableState.EXPIRED:
        return f"[dim]{text} (stored)[/]"
    return text


def _cache_cell(state: KeyState, now: float) -> str:
    if state.cache_error is not None:
        return f"[red]unreadable: {state.cache_error}[/]"
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


def _counts(counter: Counter[str]) -> str:
    return " · ".join(f"{name} {count}" for name, count in sorted(counter.items()) if count)


def _verdict(console: Console, comparison: Comparison, result: DemoResult, *, after_redrive: bool) -> None:
    total = len(comparison.keys)
    live = comparison.count(TableState.LIVE)
    expired = comparison.count(TableState.EXPIRED)
    absent = comparison.count(TableState.ABSENT)
    if comparison.all_equal and result.all_delivered:
        console.print(
            f"[bold green]All {total} keys equal[/]{' after the redrive' if after_redrive else ''}: {live} live items "
            f"cached with the table's values; {expired} items past their {TTL_ATTRIBUTE} absent from the cache while "
            f"the table still holds them (DynamoDB deletes expired items lazily, so they count as absent); "
            f"{absent} deleted keys absent from both."
        )
        return
    if not result.all_delivered:
        console.print(
            f"[bold red]FAILED[/]: only {len(result.changes)} of {result.changes_written} changes reached the handler"
            " (the mapping stopped before catching up)."
        )
    differing = comparison.differing
    if not differing:
        return
    keys = ", ".join(state.key for state in differing[:_MAX_DIFFERING_SHOWN])
    more = f" and {len(differing) - _MAX_DIFFERING_SHOWN} more" if len(differing) > _MAX_DIFFERING_SHOWN else ""
    console.print(f"[bold red]{len(differing)} of {total} keys differ[/] between cache and table: {keys}{more}.")
    in_dlq = result.dlq_keys
    unexplained = [state.key for state in differing if state.key not in in_dlq]
    if after_redrive:
        console.print(
            "The redrive did not bring these keys back in line: see its kept messages above and the handler log."
        )
    elif not unexplained:
        console.print(
            "Every one of them was changed by records in the dead-letter queue: batches that ran out of retries are "
            "skipped, so the cache is behind the table for these keys until the redrive runs. "
            "Run again with --redrive to drain the DLQ into the cache."
        )
    else:
        console.print(
            f"[red]{len(unexplained)} of them ({', '.join(unexplained[:_MAX_DIFFERING_SHOWN])}) are not covered by "
            "the dead-letter queue: changes were lost. This is a bug; the handler log has the details.[/]"
        )
