"""Logs and metrics: Powertools Logger (structured JSON, request-id correlation) and Metrics (EMF), one summary each.

Every invocation ends with one INFO line and one set of metrics carrying the same counts, and one ERROR line per
distinct systemic cause, never one per record.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_SERVICE",
    "BatchSummary",
    "log_causes",
    "logger",
    "logs_on_stderr",
    "metrics",
    "publish_summary",
]

#: Defaults of POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE: the template's parameter defaults.
DEFAULT_SERVICE = "dynamodb-momento-stream-processor"
DEFAULT_NAMESPACE = "DynamoDBMomentoStreamProcessor"

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.getenv("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE, service=SERVICE)
# An invocation that fails before its summary (a configuration error at start-up) has no metrics to flush; the error
# itself is what the user must see, not Powertools' UserWarning about the empty flush printed before it.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


@dataclass(frozen=True)
class BatchSummary:
    """The counts of one invocation."""

    records: int = 0
    sets: int = 0
    deletes: int = 0
    publishes: int = 0  # changes published
    topic_messages: int = 0  # topic messages published: as many as the changes, or fewer when packed
    superseded_writes: int = 0
    retries: int = 0
    failures: int = 0
    poison_records: int = 0
    duration_ms: float = 0.0


_METRIC_NAMES = {
    "records": "Records",
    "sets": "CacheSets",
    "deletes": "CacheDeletes",
    "publishes": "Publishes",
    "topic_messages": "TopicMessages",
    "superseded_writes": "SupersededWrites",
    "retries": "Retries",
    "failures": "BatchItemFailures",
    "poison_records": "PoisonRecords",
}


def publish_summary(summary: BatchSummary) -> None:
    """One INFO log line and the matching EMF metrics."""
    counts = asdict(summary)
    logger.info("batch processed", extra=counts)
    for field, name in _METRIC_NAMES.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts[field])
    metrics.add_metric(name="Duration", unit=MetricUnit.Milliseconds, value=summary.duration_ms)


def log_causes(message: str, causes: Mapping[str, int] | Iterable[str], **extra) -> None:
    """One ERROR line per distinct cause, with how many records it affected."""
    counted = causes if isinstance(causes, Mapping) else {cause: 1 for cause in causes}
    for cause, count in counted.items():
        logger.error(message, extra={"cause": cause, "records": count, **extra})


@contextlib.contextmanager
def logs_on_stderr() -> Iterator[None]:
    """Send the Powertools log lines to stderr while a command-line tool runs: stdout carries its report."""
    handler = logger.registered_handler
    previous = handler.setStream(sys.stderr)
    try:
        yield
    finally:
        if previous is not None:
            handler.setStream(previous)
