"""Backfill: bring a table that already holds data into the cache, safely while the table is being written.

``handler`` is the Lambda entry point (``{"table": ..., "segments": ..., "rate": ..., "resume": {...}}``);
``python -m stream_processor.backfill --table NAME [--segments 4] [--rate 50] [--resume FILE]`` the command line.
The modules: ``state`` (the resumable position of each scan segment), ``rate_limit``, ``run`` (the scan and the
per-item resync), ``summary``, ``entry`` (handler), ``cli``.
"""

from stream_processor.backfill.cli import main
from stream_processor.backfill.entry import handler, runtime
from stream_processor.backfill.rate_limit import RateLimiter
from stream_processor.backfill.run import BACKFILL_EVENT_SOURCE, Backfill, TableInfo
from stream_processor.backfill.state import BackfillState, SegmentPosition
from stream_processor.backfill.summary import BackfillSummary, PoisonItem

__all__ = [
    "BACKFILL_EVENT_SOURCE",
    "Backfill",
    "BackfillState",
    "BackfillSummary",
    "PoisonItem",
    "RateLimiter",
    "SegmentPosition",
    "TableInfo",
    "handler",
    "main",
    "runtime",
]
