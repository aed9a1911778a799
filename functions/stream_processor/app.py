"""Lambda entry point for the DynamoDB stream: wires configuration, clients, the plan, the execution and the response.

``handler(event, context)`` returns ``{"batchItemFailures": [...]}`` (ReportBatchItemFailures). Configuration and
clients are built once per container, on the first invocation (or during Lambda's init phase when running there).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from functools import cache
from typing import Any

from stream_processor.changes import stream_order
from stream_processor.config import Settings, load_settings
from stream_processor.dead_letters import DeadLetterQueue
from stream_processor.dynamodb_json import json_type, path_name
from stream_processor.executor import execute_plan
from stream_processor.gc_settings import collect_young_objects_less_often
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.observability import BatchSummary, log_causes, logger, metrics, publish_summary
from stream_processor.planner import ChangeRules, ParsedBatch, PoisonRecord, items_to_read, plan_batch, read_batch
from stream_processor.retries import Deadline
from stream_processor.table_reads import TableReader, TableReadError

__all__ = ["StreamProcessor", "handler", "processor"]


class StreamProcessor:
    """Everything one container needs to process stream batches."""

    def __init__(
        self,
        settings: Settings,
        momento: MomentoRuntime,
        dead_letters: DeadLetterQueue | None,
        table_reader: TableReader,
    ) -> None:
        self.settings = settings
        self.rules = ChangeRules.from_settings(settings)
        self.momento = momento
        self.dead_letters = dead_letters
        self.table_reader = table_reader

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> StreamProcessor:
        settings = load_settings(environ)
        momento = MomentoRuntime.from_settings(settings)
        dead_letters = DeadLetterQueue(settings.dlq_url) if settings.dlq_url else None
        return cls(settings, momento, dead_letters, TableReader())

    def process(self, event: Any, context: Any) -> dict[str, list[dict[str, str]]]:
        started = time.perf_counter()
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(records, list):
            logger.error(
                "not a DynamoDB stream batch: expected an object with a 'Records' list; nothing processed",
                extra={
                    "event_type": json_type(event),
                    "event_keys": sorted(map(path_name, event))[:10] if isinstance(event, Mapping) else None,
                },
            )
            publish_summary(BatchSummary(duration_ms=_elapsed_ms(started)))
            return {"batchItemFailures": []}
        if not records:
            logger.warning("empty batch: nothing to process")
            publish_summary(BatchSummary(duration_ms=_elapsed_ms(started)))
            return {"batchItemFailures": []}

        batch = read_batch(records, self.rules)
        failed = [rejected.sequence_number for rejected in batch.rejected]
        log_causes(
            "records rejected by configuration (reported for retry)",
            Counter(rejected.cause for rejected in batch.rejected),
        )
        current_items = self._read_table(batch, failed)
        plan = plan_batch(batch, self.rules, time.time(), current_items)
        report = self.momento.run(
            execute_plan(
                plan,
                self.momento,
                Deadline.from_context(context),
                max_in_flight=self.settings.max_in_flight,
                packed_topic_bytes=self.settings.topic_max_bytes if self.settings.topic_packing else None,
            )
        )
        failed.extend(report.failed_sequence_numbers)
        log_causes(
            "Momento is refusing every request: fix this, the records are reported for retry", report.systemic_causes
        )
        log_causes("Momento calls still failing after retries (records reported for retry)", report.exhausted_causes)
        poison = [*plan.poison, *report.poison]
        failed.extend(poison_record.sequence_number for poison_record in self._dead_letter(poison))

        identifiers = _unique(failed)
        publish_summary(
            BatchSummary(
                records=len(records),
                sets=report.sets,
                deletes=report.deletes,
                publishes=report.publishes,
                topic_messages=report.topic_messages,
                superseded_writes=plan.superseded_writes,
                retries=report.retries,
                failures=len(identifiers),
                poison_records=len(poison),
                duration_ms=_elapsed_ms(started),
            )
        )
        return {"batchItemFailures": [{"itemIdentifier": identifier} for identifier in identifiers]}

    def _read_table(self, batch: ParsedBatch, failed: list[str | None]) -> dict[str, Any] | None:
        """Current items for keys whose records carry no new image; unreadable keys are reported and dropped."""
        reads = items_to_read(batch)
        if not reads:
            return None
        try:
            return self.table_reader.read(reads)
        except TableReadError as error:
            log_causes("table read failed (records reported for retry)", [str(error)])
            for read in reads:
                entries = batch.by_key.pop(read.cache_key)
                failed.append(entries[0].sequence_number)
            return {}

    def _dead_letter(self, poison: list[PoisonRecord]) -> list[PoisonRecord]:
        """Send poison records to the DLQ; the ones that could not be sent are returned to be reported."""
        if not poison:
            return []
        for record in poison:
            logger.warning("poison record", extra={"sequence_number": record.sequence_number, "reason": record.reason})
        if self.dead_letters is None:
            log_causes(
                "poison records reported for retry instead of dead-lettered",
                {"DLQ_URL is not set: set it to the URL of an SQS queue for poison records": len(poison)},
            )
            return poison
        unsent, errors = self.dead_letters.send(poison)
        log_causes("dead-letter queue send failed (records reported for retry)", Counter(errors))
        return unsent


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _unique(sequence_numbers: list[str | None]) -> list[str]:
    """Distinct identifiers in stream order; a missing sequence number becomes "", which fails the whole batch."""
    seen = dict.fromkeys(number or "" for number in sequence_numbers)
    return sorted(seen, key=stream_order)


@cache
def processor() -> StreamProcessor:
    """The container's processor, built once (a configuration error stops start-up, naming the variable)."""
    built = StreamProcessor.from_environment()
    collect_young_objects_less_often()
    return built


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    return processor().process(event, context)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("AWS_EXECUTION_ENV"):
    # On Lambda, build during the init phase: a bad configuration then fails start-up itself, naming the variable.
    processor()
