"""The redrive's entry points: the Lambda handler (queue from ``DLQ_URL``) and the command line."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from stream_processor.command_line import aws_setup_errors
from stream_processor.config import ConfigurationError, load_settings
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.observability import logger, logs_on_stderr
from stream_processor.redrive.run import Redrive, RedriveOptions

__all__ = ["handler", "main", "redrive"]


@cache
def redrive() -> Redrive:
    """The container's redrive, built once (configuration errors name the variable)."""
    settings = load_settings()
    momento = MomentoRuntime.from_settings(settings)
    return Redrive(settings, momento, table_name=settings.table_name)


@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any] | None, context: Any) -> dict[str, Any]:
    """Redrive the queue named by ``DLQ_URL``; returns the summary.

    Event (all optional): ``dryRun`` (report only), ``maxMessages`` (read at most this many), ``waitSeconds`` (SQS
    long-poll wait per receive, default 1).
    """
    event = event or {}
    processor = redrive()
    if not processor.settings.dlq_url:
        raise ConfigurationError("DLQ_URL is required by the redrive: set it to the dead-letter queue's URL")
    options = RedriveOptions(
        queue_url=processor.settings.dlq_url,
        dry_run=bool(event.get("dryRun", False)),
        max_messages=_positive_or_none(event.get("maxMessages"), "maxMessages"),
        wait_seconds=int(event.get("waitSeconds", 1)),
    )
    return processor.run(options, context).to_dict()


def _positive_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: redrive a queue; exit status 0 when nothing was kept (or a dry run), 1 when messages stay."""
    with logs_on_stderr(), aws_setup_errors("python -m stream_processor.redrive"):
        return _cli(argv)


def _cli(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stream_processor.redrive",
        description="Resync the cache from the table for every DLQ message, publish redriven change messages, "
        "and delete the messages that are done. Momento settings come from the function's environment variables.",
    )
    parser.add_argument("--queue-url", default=os.environ.get("DLQ_URL"), help="the DLQ (default: $DLQ_URL)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be done; change nothing")
    parser.add_argument("--max-messages", type=int, help="read at most this many messages")
    parser.add_argument("--wait-seconds", type=int, default=1, help="SQS long-poll wait per receive (0-20)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not args.queue_url:
        parser.error("--queue-url is required (or set DLQ_URL)")
    if args.max_messages is not None and args.max_messages <= 0:
        parser.error("--max-messages must be a positive integer")
    try:
        settings = load_settings()
    except ConfigurationError as error:
        parser.exit(2, f"configuration error: {error}\n")
    momento = None if args.dry_run else MomentoRuntime.from_settings(settings)
    try:
        summary = Redrive(settings, momento, table_name=settings.table_name).run(
            RedriveOptions(
                queue_url=args.queue_url,
                dry_run=args.dry_run,
                max_messages=args.max_messages,
                wait_seconds=args.wait_seconds,
            )
        )
    finally:
        if momento is not None:
            momento.close()
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.text())
    return 0 if args.dry_run or not summary.kept else 1
