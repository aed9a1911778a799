"""``python -m stream_processor.backfill``: backfill a table from the command line, checkpointing to a state file.

Runs are explicit: a run starts from the beginning of the table and writes its checkpoints to a new state file
(``--state-file``, default ``backfill-TABLE-TIMESTAMP.json`` in the current directory, printed at the start);
``--resume FILE`` continues an interrupted run from its file. A completed run's file is removed, and a completed
state is never "resumed": rebuilding the cache means running the backfill again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stream_processor.backfill.run import DEFAULT_RATE, DEFAULT_SEGMENTS, Backfill, TableInfo
from stream_processor.backfill.state import MAX_SEGMENTS, BackfillState
from stream_processor.command_line import aws_setup_errors
from stream_processor.config import ConfigurationError, load_settings
from stream_processor.dead_letters import DeadLetterQueue
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.observability import logger, logs_on_stderr

__all__ = ["main"]

PROG = "python -m stream_processor.backfill"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: backfill a table, writing the state file after every page; exit status 0 when complete."""
    with logs_on_stderr(), aws_setup_errors(PROG):
        return _cli(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bring every item of an existing DynamoDB table into the Momento cache with the stream's key, "
        "value and TTL rules, safely while the table is being written. Momento settings come from the function's "
        "environment variables.",
    )
    parser.add_argument("--table", default=os.environ.get("TABLE_NAME"), help="the table (default: $TABLE_NAME)")
    parser.add_argument("--segments", type=int, default=DEFAULT_SEGMENTS, help="parallel Scan segments (default 4)")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="Momento operations per second, in total (default 50)"
    )
    parser.add_argument(
        "--read-rate", type=float, help="consistent re-check reads of the table per second (default: the --rate)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--state-file", type=Path, help="where this new run writes its checkpoints (default: backfill-TABLE-TIME.json)"
    )
    where.add_argument("--resume", type=Path, metavar="FILE", help="continue the interrupted run of this state file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _cli(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.segments <= MAX_SEGMENTS:
        parser.error(f"--segments must be between 1 and {MAX_SEGMENTS}")
    if not args.rate > 0 or (args.read_rate is not None and not args.read_rate > 0):
        parser.error("--rate and --read-rate must be positive")
    state, state_file = _state(parser, args)
    try:
        settings = load_settings()
    except ConfigurationError as error:
        parser.exit(2, f"configuration error: {error}\n")

    import boto3

    dynamodb = boto3.client("dynamodb")
    try:
        table = TableInfo.describe(dynamodb, state.table)
    except (ClientError, BotoCoreError) as error:
        parser.exit(2, f"cannot describe table {state.table!r}: {error}\n")
    momento = MomentoRuntime.from_settings(settings)
    progress = _Progress(table.item_count, state.items)
    print(f"checkpoints: {state_file} (continue an interrupted run with --resume {state_file})", file=sys.stderr)

    def checkpoint(state: BackfillState, items: int) -> None:
        _write_atomically(state_file, state.to_dict())
        progress.advance(items, state)

    try:
        with progress:
            summary = momento.run(
                Backfill(
                    settings,
                    momento,
                    table,
                    dynamodb=dynamodb,
                    rate=args.rate,
                    read_rate=args.read_rate,
                    dead_letters=DeadLetterQueue(settings.dlq_url) if settings.dlq_url else None,
                    on_page=checkpoint,
                ).run(state)
            )
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with --resume {state_file}", file=sys.stderr)
        return 130
    finally:
        momento.close()
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.text())
    if summary.complete:
        state_file.unlink(missing_ok=True)  # nothing left to resume: the next run starts from the beginning
        return 0
    _write_atomically(state_file, state.to_dict())
    print(f"continue with: {PROG} --resume {state_file}", file=sys.stderr)
    return 1


def _state(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[BackfillState, Path]:
    """The state to run from and the file it is checkpointed to: a new run, or the one ``--resume`` names."""
    if args.resume is not None:
        try:
            state = BackfillState.from_dict(json.loads(args.resume.read_text()))
        except (OSError, ValueError) as error:
            parser.exit(2, f"cannot resume from {args.resume}: {error}\n")
        if args.table and state.table != args.table:
            parser.error(f"{args.resume} is for table {state.table!r}, not {args.table!r}")
        if state.complete:
            parser.exit(2, f"{args.resume} holds a completed backfill: run without --resume to backfill again\n")
        print(f"resuming from {args.resume}: {state.items} items done", file=sys.stderr)
        return state, args.resume
    if not args.table:
        parser.error("--table is required (or set TABLE_NAME)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    state_file: Path = args.state_file or Path(f"backfill-{args.table}-{stamp}.json")
    if state_file.exists():
        parser.exit(2, f"{state_file} exists: continue it with --resume {state_file}, or choose another --state-file\n")
    return BackfillState.new(args.table, args.segments), state_file


def _write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write the state file so that an interruption leaves the old or the new state, never half of one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


class _Progress:
    """A rich progress bar when stdout is a terminal, log lines (at most one per 5 s) otherwise."""

    def __init__(self, total: int | None, done: int) -> None:
        self.total = total or None
        self.done = done
        self._bar: Any = None
        self._last_log = 0.0

    def __enter__(self) -> _Progress:
        if sys.stdout.isatty():
            try:
                from rich.progress import Progress  # a CLI-only dependency: never imported on Lambda
            except ImportError:
                return self
            self._bar = Progress()
            self._bar.start()
            self._task = self._bar.add_task("backfill", total=self.total, completed=self.done)
        return self

    def advance(self, items: int, state: BackfillState) -> None:
        self.done += items
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif time.monotonic() - self._last_log >= 5.0 or state.complete:
            self._last_log = time.monotonic()
            logger.info(
                "backfill progress",
                extra={"items": self.done, "approximateTotal": self.total, "complete": state.complete},
            )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
