"""What `make invoke` prints: the event, the configuration used, the response, the cache, the topic, the DLQ, the log.

Plain text, one labelled block each, JSON kept on one line so it can be copied; every number is read back from
the local Momento server, the moto queue and the handler's own log, never from what the event should have done.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from local_pipeline.function_environment import FunctionConfig
from local_pipeline.handler_log import InvocationTotals

__all__ = ["InvocationResult", "print_result"]

_LABEL = 11
_MAX_RECORDS_NAMED = 5
_LOG_FIELDS_SHOWN_NEVER = {"level", "location", "message", "timestamp", "service", "cold_start", "xray_trace_id"}


@dataclass(frozen=True)
class InvocationResult:
    """One invocation and what it left behind."""

    options: Any  # InvokeOptions
    config: FunctionConfig
    environment: dict[str, str]  # what the handler ran with (the function's variables)
    overrides: dict[str, str]  # from the --env-vars file
    notes: list[str]
    event: Any
    response: Any
    error: str | None  # a one-line configuration error, or the traceback of a crash
    cache_name: str
    topic_name: str
    cache: dict[str, tuple[bytes, float | None]]  # key: (value, seconds to live)
    messages: list[bytes]
    dead_letters: list[str] | None  # None: DLQ_URL unset
    totals: InvocationTotals
    log_entries: list[dict[str, Any]]
    log_path: Path


def print_result(result: InvocationResult, out: TextIO) -> None:
    def block(label: str, first: str, *more: str) -> None:
        print(f"{label:<{_LABEL}}{first}", file=out)
        for line in more:
            print(" " * _LABEL + line, file=out)

    config = result.config
    block("Event", f"{result.options.event_path}: {_describe(result.event)}")
    source = f"{result.options.template_path.name}, {config.logical_id} ({config.handler}, timeout "
    source += f"{config.timeout_seconds} s, {config.memory_size_mb} MB): Globals and the function's Environment"
    if result.options.env_vars_path is not None:
        source += f"; overrides from {result.options.env_vars_path}: {len(result.overrides)}"
    variables = " ".join(f"{name}={value}" for name, value in sorted(result.environment.items()))
    block(
        "Config",
        source,
        *textwrap.wrap(variables, 120 - _LABEL, break_long_words=False, break_on_hyphens=False),
        *(f"note: {note}" for note in result.notes),
    )
    dlq = "an SQS queue in moto (the template's DeadLetterQueue)" if result.dead_letters is not None else "unset"
    block("", f"Momento: a local server started for this run · DLQ_URL: {dlq}")
    if result.error is not None:
        first, *rest = result.error.splitlines()
        block("Error", first, *rest)
        block("Response", "none: the handler raised")
    else:
        block("Response", json.dumps(result.response))
    totals = result.totals
    if totals.invocations:
        block(
            "Handler",
            f"records {totals.records} · cache sets {totals.sets} · deletes {totals.deletes} · publishes "
            f"{totals.publishes} · superseded writes {totals.superseded_writes} · retries {totals.retries} · "
            f"reported failed {totals.failures} · poison {totals.poison_records}",
        )
    block("Cache", *_cache_lines(result))
    block("Topic", *_topic_lines(result))
    block("DLQ", *_dead_letter_lines(result))
    block("Log", *_log_lines(result))


def _describe(event: Any) -> str:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return "not a DynamoDB stream event (no Records list)"
    named = [_record_name(record) for record in records[:_MAX_RECORDS_NAMED]]
    more = f", … {len(records) - _MAX_RECORDS_NAMED} more" if len(records) > _MAX_RECORDS_NAMED else ""
    return (
        f"{len(records)} record{'' if len(records) == 1 else 's'}" + (": " if named else "") + ", ".join(named) + more
    )


def _record_name(record: Any) -> str:
    if not isinstance(record, dict):
        return "not a record"
    keys = (record.get("dynamodb") or {}).get("Keys") if isinstance(record.get("dynamodb"), dict) else None
    if isinstance(keys, dict):
        values = [next(iter(value.values()), "?") if isinstance(value, dict) else "?" for value in keys.values()]
        key = "#".join(str(value) for value in values)
    else:
        key = "(no keys)"
    return f"{record.get('eventName', '?')} {key}"


def _cache_lines(result: InvocationResult) -> list[str]:
    entries = sorted(result.cache.items())
    lines = [
        f"{result.cache_name} holds {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}" + (":" if entries else "")
    ]
    for key, (value, ttl) in entries:
        lives = f"TTL {round(ttl)} s" if ttl is not None else "no TTL"
        lines.append(f"  {key}  {lives}  {value.decode('utf-8', 'replace')}")
    if result.totals.deletes:
        named = sorted({_message_key(message) for message in result.messages} - set(result.cache) - {None})
        lines.append(
            f"the handler deleted {result.totals.deletes} key{'' if result.totals.deletes == 1 else 's'}"
            + (f" (named by the messages, absent from the cache: {', '.join(named)})" if named else "")
        )
    return lines


def _topic_lines(result: InvocationResult) -> list[str]:
    count = len(result.messages)
    where = f"{result.cache_name}/{result.topic_name}"
    return [
        f"{count} message{'' if count == 1 else 's'} published to {where}" + (":" if count else ""),
        *(f"  {message.decode('utf-8', 'replace')}" for message in result.messages),
    ]


def _dead_letter_lines(result: InvocationResult) -> list[str]:
    if result.dead_letters is None:
        return ["DLQ_URL is unset: poison records are reported as batch item failures (see the response)"]
    if not result.dead_letters:
        return ["empty"]
    lines = [f"{len(result.dead_letters)} message{'' if len(result.dead_letters) == 1 else 's'}:"]
    for body in result.dead_letters:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("kind") == "poison-record":
            record = document.get("record") if isinstance(document.get("record"), dict) else {}
            number = (record.get("dynamodb") or {}).get("SequenceNumber") if isinstance(record, dict) else None
            lines.append(f"  poison record {record.get('eventID')} (sequence {number}): {document.get('reason')}")
        else:
            lines.append(f"  {body}")
    return lines


def _log_lines(result: InvocationResult) -> list[str]:
    notable = [entry for entry in result.log_entries if entry.get("level") in ("WARNING", "ERROR", "CRITICAL")]
    count = len(result.log_entries)
    lines = [f"{count} line{'' if count == 1 else 's'}, {len(notable)} at WARNING or above" + (":" if notable else "")]
    for entry in notable:
        fields = " ".join(
            f"{name}={value}"
            for name, value in entry.items()
            if name not in _LOG_FIELDS_SHOWN_NEVER and not name.startswith("function_")
        )
        lines.append(f"  {entry['level']} {entry['message']}" + (f"  {fields}" if fields else ""))
    lines.append(f"full log (Powertools JSON lines and EMF metrics): {result.log_path}")
    return lines


def _message_key(message: bytes) -> str | None:
    try:
        key = json.loads(message).get("key")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None
