"""The report of a local run, rendered with rich: what was written, processed, cached, published and dead-lettered.

It ends with the verdict the exit status follows: every key's cache entry equals the table's item (an item past its
TTL counts as absent), or which keys differ and why.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from local_pipeline.comparison import Comparison, TableState
from local_pipeline.event_source_mapping import InvocationOutcome
from local_pipeline.key_table import key_table
from local_pipeline.run_result import CACHE_NAME, TABLE_NAME, TOPIC_NAME, DemoResult, TopicTally
from local_pipeline.weather import TTL_ATTRIBUTE, WriteKind

__all__ = ["render"]

_MAX_DIFFERING_SHOWN = 20
_MAX_DEAD_LETTERS_SHOWN = 20
_OUTCOMES = {
    InvocationOutcome.SUCCESS: "succeeded",
    InvocationOutcome.PARTIAL_FAILURE: "partial batch failures",
    InvocationOutcome.FUNCTION_ERROR: "function errors",
    InvocationOutcome.TIMEOUT: "timed out",
    InvocationOutcome.INVALID_RESPONSE: "invalid responses",
}


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
        "stream_processor.app.handler on virtual Lambda time → local Momento server (real SDK over gRPC) → topic "
        "subscriber",
        style="dim",
    )
    console.print(_summary(result))
    console.print(_dead_letter_table(result))
    if result.options.show or not result.comparison.all_equal:
        console.print(key_table(result.comparison, result.options.show, result.compared_at, "Cache against table"))
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
            console.print(f"[yellow]DLQ after the redrive: {_plural(len(redrive.dead_letters), 'message')} kept[/]")
        differing = {state.key for state in result.comparison.differing}
        shown = [state for state in redrive.comparison.keys if state.key in differing]
        if shown:
            now_equal = sum(state.equal for state in shown)
            console.print(
                f"Keys behind the table before the redrive: {len(shown)} ({escape(', '.join(s.key for s in shown))});"
                f" equal to it now: {now_equal} of {len(shown)}."
            )
            console.print(key_table(Comparison(shown), len(shown), result.compared_at, "Keys that differed, now"))
        _verdict(console, redrive.comparison, result, after_redrive=True)
    for note in result.notes:
        console.print(note)
    console.print()
    console.print(f"Handler logs (Powertools JSON lines and EMF metrics): {escape(str(result.log_path))}", style="dim")
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
    grid.add_row("Stream", _stream_line(result))
    mapping = result.mapping
    outcomes = result.outcomes
    grid.add_row(
        "Invocations",
        f"{mapping.invocations} ("
        + " · ".join(f"{outcomes[outcome]} {text}" for outcome, text in _OUTCOMES.items() if outcomes[outcome])
        + f") delivering {mapping.records_delivered} records: every change once, plus {result.redeliveries} "
        f"re-deliveries of retried or split batches · batch retries {mapping.batches_retried} · bisections "
        f"{mapping.bisections}",
    )
    handler = result.handler
    grid.add_row(
        "Handler",
        f"summed over its {handler.invocations} invocations, re-delivered records again: records {handler.records} · "
        f"cache sets {handler.sets} · deletes {handler.deletes} · superseded writes {handler.superseded_writes} "
        f"(earlier writes of a key in the same batch, skipped) · publishes {handler.publishes} · retries with "
        f"backoff {handler.retries} · records reported failed {handler.failures} · poison {handler.poison_records}",
    )
    calls = _counts(result.momento_calls)
    grid.add_row(
        "Momento calls",
        f"{calls} (every call the server received, retries included)" if calls else "none",
    )
    faults = _counts(result.injected_faults)
    if faults:
        faults += (
            f" ({sum(result.injected_faults.values())} in all: UNAVAILABLE, DEADLINE_EXCEEDED after the write took "
            "effect, RESOURCE_EXHAUSTED rate limits; calls minus faults are the handler's successful calls)"
        )
    grid.add_row("Injected faults", faults or "none")
    grid.add_row("Topic", _topic_line(result.topic, result, after_redrive=False))
    return grid


def _stream_line(result: DemoResult) -> str:
    """Every change once: processed (the mapping moved past it) or skipped (its batch ran out of retries)."""
    skipped = len(result.discarded_changes)
    line = f"{result.changes_written} changes: {len(result.changes) - skipped} processed"
    if skipped:
        messages = sum(batch.sent for batch in result.mapping.discarded)
        line += (
            f", {skipped} skipped because their batch ran out of retries ({_plural(messages, 'on-failure message')} "
            "in the DLQ name their ranges)"
        )
    missing = result.changes_written - len(result.changes)
    if missing:
        line += f", [red]{missing} never reached the handler[/]"
    if not result.mapping.caught_up:
        line += " · [red]the mapping stopped before catching up[/]"
    return line


def _topic_line(topic: TopicTally, result: DemoResult, *, after_redrive: bool) -> str:
    line = (
        f"{_plural(topic.accepted_by_server, 'message')} accepted on {CACHE_NAME}/{TOPIC_NAME}, {topic.received} "
        f"received by the subscriber ({_plural(result.subscriptions, 'subscription')}): {topic.distinct_changes} of "
        f"{len(result.changes)} changes at least once"
    )
    if topic.duplicates:
        why = "a retried publish may already have taken effect" + (
            ", and the redrive republishes what it resyncs" if after_redrive else ""
        )
        line += f" ({topic.duplicates} more than once: at-least-once delivery, {why}; deduplicate on eventID)"
    if topic.redriven:
        line += f", {topic.redriven} redriven"
    if topic.never_published:
        lost = set(result.lost_publishes)
        waiting = [number for number in topic.never_published if number not in lost]
        if waiting:
            count = _plural(len(waiting), "change")
            line += f"; [yellow]{count} not published yet, in the DLQ (the redrive publishes them)[/]"
        if lost:
            line += f"; [bold red]{_plural(len(lost), 'change')} never published and not in the DLQ: lost[/]"
    if topic.missed_by_subscriber > 0:
        line += f"; [red]{topic.missed_by_subscriber} accepted messages did not reach the subscriber in time[/]"
    return line


def _dead_letter_table(result: DemoResult) -> Table | Text:
    if not result.dead_letters:
        return Text.assemble(("DLQ", "bold"), "  empty: no batch ran out of retries, no poison record")
    positions = {number: index for index, number in enumerate(sorted(result.changes, key=int), start=1)}
    table = Table(title=f"Dead-letter queue: {_plural(len(result.dead_letters), 'message')}", title_justify="left")
    table.add_column("Kind")
    table.add_column("Why")
    table.add_column("Stream records", justify="right")
    table.add_column("Keys affected")
    for letter in result.dead_letters[:_MAX_DEAD_LETTERS_SHOWN]:
        why = letter.reason
        if letter.invocations is not None:
            why += f" after {_plural(letter.invocations, 'invocation')}"
        numbers = letter.sequence_numbers
        # Positions in the stream (1 = first change written) read better than 22-digit sequence numbers.
        where = "" if not numbers else f"{positions.get(numbers[0], '?')}..{positions.get(numbers[-1], '?')}"
        if len(numbers) == 1:
            where = str(positions.get(numbers[0], "?"))
        table.add_row(letter.kind, escape(why), where, escape(", ".join(letter.keys)))
    if len(result.dead_letters) > _MAX_DEAD_LETTERS_SHOWN:
        table.add_row("…", f"and {len(result.dead_letters) - _MAX_DEAD_LETTERS_SHOWN} more messages", "", "")
    return table


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _counts(counter: Counter[str]) -> str:
    return " · ".join(f"{name} {count}" for name, count in sorted(counter.items()) if count)


def _verdict(console: Console, comparison: Comparison, result: DemoResult, *, after_redrive: bool) -> None:
    total = len(comparison.keys)
    live = comparison.count(TableState.LIVE)
    expired = comparison.count(TableState.EXPIRED)
    absent = comparison.count(TableState.ABSENT)
    if not result.all_delivered:
        console.print(
            f"[bold red]FAILED[/]: only {len(result.changes)} of {result.changes_written} changes reached the handler"
            " (the mapping stopped before catching up)."
        )
    if result.lost_publishes and (after_redrive or result.redrive is None):
        console.print(
            f"[bold red]FAILED[/]: {_plural(len(result.lost_publishes), 'change')} never published, and no DLQ "
            "message accounts for them. This is a bug; the handler log has the details."
        )
    differing = comparison.differing
    if not differing:
        console.print(
            f"[bold green]All {total} keys equal[/]{' after the redrive' if after_redrive else ''}: "
            f"{_plural(live, 'live item')} cached with the table's values; "
            f"{_plural(expired, 'item')} past {TTL_ATTRIBUTE} absent from the cache while the table still holds "
            f"{'it' if expired == 1 else 'them'} (DynamoDB deletes expired items lazily, so they count as absent); "
            f"{_plural(absent, 'key')} absent from both (deleted, or never written)."
        )
        if result.dead_letters and not after_redrive and result.redrive is None:
            console.print(
                f"The DLQ holds {_plural(len(result.dead_letters), 'message')}: the keys in them agree with the table "
                "again (later changes rewrote them), but their changes were not all published. Run again with "
                "--redrive to resync those keys and publish the changes."
            )
        return
    keys = escape(", ".join(state.key for state in differing[:_MAX_DIFFERING_SHOWN]))
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
            + ("The redrive follows." if result.redrive is not None else "Run again with --redrive to drain the DLQ.")
        )
    else:
        named = escape(", ".join(unexplained[:_MAX_DIFFERING_SHOWN]))
        console.print(
            f"[red]{len(unexplained)} of them ({named}) are not covered by the dead-letter queue: changes were lost. "
            "This is a bug; the handler log has the details.[/]"
        )
