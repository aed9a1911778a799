"""The backfill's Lambda entry point: one invocation backfills until done or until its time runs low."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from stream_processor.backfill.run import DEFAULT_RATE, DEFAULT_SEGMENTS, Backfill, TableInfo
from stream_processor.backfill.state import BackfillState
from stream_processor.config import Settings, load_settings
from stream_processor.dead_letters import DeadLetterQueue
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.observability import logger
from stream_processor.retries import Deadline

__all__ = ["STOP_MARGIN_SECONDS", "handler", "runtime"]

#: The handler stops starting pages when the invocation has less than this left.
STOP_MARGIN_SECONDS = 30.0


@cache
def runtime() -> tuple[Settings, MomentoRuntime]:
    """The container's settings and Momento clients, built once."""
    settings = load_settings()
    return settings, MomentoRuntime.from_settings(settings)


@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any] | None, context: Any) -> dict[str, Any]:
    """Backfill (or continue backfilling) a table; returns ``{"complete", "summary"}`` plus ``"resume"`` if not done.

    Event (all optional): ``table`` (default ``TABLE_NAME``), ``segments`` (4), ``rate`` (Momento operations per
    second, 50), ``readRate`` (re-check reads per second, default the rate), ``resume`` (the ``resume`` of a previous
    response: continue that run; without it a new run starts from the beginning), ``pageSize`` (Scan Limit; default:
    about ten seconds of work per page at the rate).
    """
    event = event or {}
    settings, momento = runtime()
    resume = event.get("resume")
    table = event.get("table") or (resume or {}).get("table") or settings.table_name
    if not table:
        raise ValueError('no table: pass {"table": NAME} (or set TABLE_NAME)')
    segments = positive_number(event.get("segments", DEFAULT_SEGMENTS), "segments", int)
    rate = positive_number(event.get("rate", DEFAULT_RATE), "rate", float)
    read_rate = positive_number(event["readRate"], "readRate", float) if "readRate" in event else None
    state = BackfillState.from_dict(resume) if resume else BackfillState.new(table, segments)
    if resume and state.complete:
        raise ValueError("the resume state is of a completed backfill: invoke without 'resume' to backfill again")
    if resume and "segments" in event and segments != state.total_segments:
        raise ValueError(f"segments must match the resume state ({state.total_segments}), got {segments}")

    def time_low() -> str | None:
        if context.get_remaining_time_in_millis() / 1000.0 < STOP_MARGIN_SECONDS:
            return "the invocation's remaining time ran low: invoke again with the returned resume state"
        return None

    import boto3

    dynamodb = boto3.client("dynamodb")
    backfill = Backfill(
        settings,
        momento,
        TableInfo.describe(dynamodb, state.table),
        dynamodb=dynamodb,
        rate=rate,
        read_rate=read_rate,
        dead_letters=DeadLetterQueue(settings.dlq_url) if settings.dlq_url else None,
        page_size=positive_number(event["pageSize"], "pageSize", int) if "pageSize" in event else None,
        retry_deadline=lambda: Deadline.from_context(context),
        should_stop=time_low,
        on_page=lambda state, items: logger.info(
            "backfill progress", extra={"items": state.items, "segmentsDone": sum(p.done for p in state.positions)}
        ),
    )
    summary = momento.run(backfill.run(state))
    response: dict[str, Any] = {"complete": summary.complete, "summary": summary.to_dict()}
    if not summary.complete:
        response["resume"] = state.to_dict()
    return response


def positive_number(value: Any, name: str, kind: type) -> Any:
    """``value`` as a positive ``kind`` (int or float); ``ValueError`` naming ``name`` otherwise."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if isinstance(value, bool) or not number > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number
