"""Redrive: bring the cache back in line with the table for everything in the dead-letter queue, then publish.

``handler`` is the Lambda entry point (queue from ``DLQ_URL``; event ``{"dryRun": true, "maxMessages": N}``);
``python -m stream_processor.redrive --queue-url URL [--dry-run] [--max-messages N]`` the command line. The modules:
``queue_messages`` (a DLQ message to the stream records it is about), ``resync`` (each affected key as an out-of-band
resync, and its redriven or resync messages), ``run`` (the SQS loop), ``summary`` (what a run did), ``entry``.
"""

from stream_processor.redrive.entry import handler, main, redrive
from stream_processor.redrive.resync import RESYNC_EVENT
from stream_processor.redrive.run import Redrive, RedriveOptions
from stream_processor.redrive.summary import BACKFILL_HINT, MessageOutcome, RedriveSummary

__all__ = [
    "BACKFILL_HINT",
    "RESYNC_EVENT",
    "MessageOutcome",
    "Redrive",
    "RedriveOptions",
    "RedriveSummary",
    "handler",
    "main",
    "redrive",
]
