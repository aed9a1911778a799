"""`make run`: the whole pipeline on one machine, then a report of what reached the cache and the topic.

A local Momento-compatible server and an in-process moto DynamoDB table with a NEW_AND_OLD_IMAGES stream stand in
for the cloud. The weather workload is written to the table; the event source mapping emulator drives the stream
through the real handler (``stream_processor.app.handler``) exactly as Lambda would, failures going to an SQS
on-failure destination; a subscriber on the topic (the real SDK) counts the change messages. Then every key's cache
entry is compared with the table. Optionally the server fails a share of Momento calls, and the DLQ is redriven.

A run is reproducible: the seed decides the workload, moto's identifiers, the server's injected faults and the
handler's backoff jitter, and the handler runs on virtual Lambda time (``virtual_time``), so the same options give
the same report. No AWS account, credentials or Docker: fake credentials are set in-process for moto, and restored
afterwards.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
from moto import mock_aws
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from local_pipeline.comparison import compare
from local_pipeline.dead_letter_queue import dead_letters
from local_pipeline.environment import fake_aws_environment, scoped_environment
from local_pipeline.event_source_mapping import Handler, MappingReport, MappingSettings, StreamEventSourceMapping
from local_pipeline.handler_log import HandlerLog
from local_pipeline.lambda_context import LambdaContext
from local_pipeline.momento_server import LocalMomentoServer, fault_rate
from local_pipeline.report import render
from local_pipeline.run_options import DemoOptions, parse_args
from local_pipeline.run_result import (
    CACHE_NAME,
    DLQ_NAME,
    REGION,
    TABLE_NAME,
    TOPIC_NAME,
    DeadLetter,
    DemoResult,
    RedriveResult,
    StreamChange,
    TopicTally,
)
from local_pipeline.subscriber import TopicSubscriber
from local_pipeline.virtual_time import VirtualLambdaTime
from local_pipeline.weather import KEY_ATTRIBUTE, TTL_ATTRIBUTE, WeatherTable, locations, plan_changes
from stream_processor.config import VARIABLES

__all__ = ["main", "run_demo"]

#: How long to wait for the subscriber to receive what the server accepted, after processing.
SUBSCRIBER_WAIT_SECONDS = 10.0
#: A bound on the run when retries are unlimited (-1) and failures persist.
MAX_INVOCATIONS = 100_000


def run_demo(
    options: DemoOptions, *, server: LocalMomentoServer | None = None, console: Console | None = None
) -> DemoResult:
    """Run the pipeline once; ``server``: use this running local Momento server (its cache ``weather-cache`` must be
    empty or absent, and its own seed decides the faults) instead of starting one seeded with ``options.seed``."""
    # The console keeps today's stdout: the handler's stdout is redirected to the log while it runs.
    console = console or Console(file=sys.stdout)
    started = time.perf_counter()
    log_path = options.log_file or Path(tempfile.mkdtemp(prefix="dynamodb-momento-run-")) / "handler.log"
    with contextlib.ExitStack() as stack:
        if server is None:
            # Items carry TTLs from the clock and messages carry eventIDs and times: faults are decided per key and
            # attempt, leaving values out, so the same seed injects the same faults run after run.
            server = stack.enter_context(LocalMomentoServer(seed=options.seed, faults_by_value=False))
        server.create_cache(CACHE_NAME)
        if server.cache_items(CACHE_NAME):
            raise ValueError(f"cache {CACHE_NAME} of the given server holds items: the comparison needs it empty")
        stack.enter_context(fake_aws_environment(REGION))
        stack.enter_context(mock_aws())
        _seed_moto(options.seed)
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        table, stream_arn = WeatherTable.create(boto3.client("dynamodb", region_name=REGION), TABLE_NAME)
        stack.enter_context(_processor_environment(server, dlq_url))
        log = stack.enter_context(HandlerLog(log_path).capture())
        stack.callback(_close_container)
        calls_before, faults_before = server.calls, server.injected_faults
        subscriber = stack.enter_context(TopicSubscriber(server.credential_provider(), CACHE_NAME, TOPIC_NAME))
        lambda_time = stack.enter_context(VirtualLambdaTime(time.time(), options.seed).installed())
        server.add_faults(fault_rate(options.fault_rate))
        stack.callback(server.clear_faults)

        history = plan_changes(options.changes, options.keys, random.Random(options.seed), lambda_time())
        changes: dict[str, StreamChange] = {}
        settings = MappingSettings(
            batch_size=options.batch_size,
            maximum_retry_attempts=options.max_retries,
            function_timeout_seconds=options.timeout_seconds,
            memory_size_mb=512,
            on_failure_queue_url=dlq_url,
        )
        with _progress(console) as progress:
            writing = progress.add_task("writing changes to the table", total=len(history))
            table.write_all(history, on_write=lambda: progress.advance(writing))
            processing = progress.add_task("processing the stream", total=len(history))
            handler = _recording(lambda_time.wrap(log.wrap(_container_handler())), changes)
            mapping = StreamEventSourceMapping(
                stream_arn, handler, settings, clock=lambda_time, rng=random.Random(options.seed)
            )
            report = _drive(mapping, lambda: progress.update(processing, completed=len(changes)))

        topic = _topic_tally(subscriber, server, changes)
        calls = server.calls - calls_before
        subscriptions = calls.pop("Subscribe", 0)
        compared_at = time.time()
        result = DemoResult(
            options=options,
            written=Counter(change.kind for change in history),
            changes=changes,
            mapping=report,
            handler=log.totals(),
            momento_calls=calls,
            injected_faults=server.injected_faults - faults_before,
            subscriptions=subscriptions,
            topic=topic,
            dead_letters=_dead_letters(sqs, dlq_url, changes),
            comparison=compare(locations(options.keys), table.items(), server.cache_items(CACHE_NAME), compared_at),
            compared_at=compared_at,
            log_path=log_path,
        )
        if options.redrive:
            _redrive(result, server, table, subscriber, sqs, dlq_url)
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _seed_moto(seed: int) -> None:
    """Seed moto's identifiers (stream eventIDs, message ids) with moto's own seeding call, as its docs show."""
    requests.post(f"http://motoapi.amazonaws.com/moto-api/seed?a={seed}", timeout=5).raise_for_status()


def _drive(mapping: StreamEventSourceMapping, on_progress: Callable[[], None]) -> MappingReport:
    """Poll round after round (as Lambda's pollers do) until a round finds nothing to deliver."""
    total = MappingReport()
    while total.invocations < MAX_INVOCATIONS:
        part = mapping.poll_once(max_invocations=MAX_INVOCATIONS - total.invocations)
        total.extend(part)
        on_progress()
        if not part.invocation_log and not part.discarded:
            return total
    total.caught_up = False
    return total


def _recording(handler: Handler, changes: dict[str, StreamChange]) -> Handler:
    """The handler, noting every record it is given (the report counts changes by sequence number)."""

    def invoke(event: dict[str, Any], context: LambdaContext) -> Any:
        for record in event.get("Records", []):
            stream = record["dynamodb"]
            number = stream["SequenceNumber"]
            if number not in changes:
                key = stream["Keys"][KEY_ATTRIBUTE]["S"]
                changes[number] = StreamChange(number, record["eventID"], record["eventName"], key)
        return handler(event, context)

    return invoke


def _container_handler() -> Handler:
    from stream_processor import app

    app.processor.cache_clear()  # a fresh container, configured from the environment set for this run
    return app.handler


def _close_container() -> None:
    from stream_processor import app

    if app.processor.cache_info().currsize:
        app.processor().momento.close()
    app.processor.cache_clear()


def _topic_tally(
    subscriber: TopicSubscriber, server: LocalMomentoServer, changes: Mapping[str, StreamChange]
) -> TopicTally:
    accepted = [json.loads(message) for message in server.published(CACHE_NAME, TOPIC_NAME)]
    subscriber.wait_for(len(accepted), SUBSCRIBER_WAIT_SECONDS)
    event_ids = Counter(message.get("eventID") for message in accepted)
    in_order = sorted(changes.items(), key=lambda item: int(item[0]))
    never = tuple(number for number, change in in_order if change.event_id not in event_ids)
    return TopicTally(
        accepted_by_server=len(accepted),
        received=len(subscriber.messages),
        distinct_changes=len(changes) - len(never),
        duplicates=sum(count - 1 for count in event_ids.values()),
        redriven=sum(bool(message.get("redriven")) for message in accepted),
        never_published=never,
    )


def _dead_letters(sqs: Any, queue_url: str, changes: Mapping[str, StreamChange]) -> list[DeadLetter]:
    return dead_letters(sqs, queue_url, changes, lambda keys: keys.get(KEY_ATTRIBUTE, {}).get("S"))


def _redrive(
    result: DemoResult,
    server: LocalMomentoServer,
    table: WeatherTable,
    subscriber: TopicSubscriber,
    sqs: Any,
    dlq_url: str,
) -> None:
    """Fix, then redrive: the injected faults stop (the outage is over) and the DLQ is drained into the cache."""
    if not result.dead_letters:
        result.notes.append("--redrive: the dead-letter queue is empty, nothing to redrive.")
        return
    try:
        from stream_processor.momento_clients import MomentoRuntime
        from stream_processor.redrive import Redrive, RedriveOptions
    except ImportError as error:  # the redrive ships with the stream processor; this keeps the demo usable without
        result.redrive_unavailable = f"the redrive is not available: {error}"
        return
    from stream_processor.config import load_settings

    server.clear_faults()
    settings = load_settings()
    momento = MomentoRuntime(
        settings.momento, settings.cache_name, settings.topic_name, timedelta(seconds=settings.default_ttl_seconds)
    )
    try:
        summary = Redrive(settings, momento, table_name=TABLE_NAME).run(RedriveOptions(dlq_url, wait_seconds=0))
    finally:
        momento.close()
    compared_at = time.time()
    result.redrive = RedriveResult(
        summary_text=summary.text(),
        messages_kept=len(summary.kept),
        comparison=compare(locations(result.options.keys), table.items(), server.cache_items(CACHE_NAME), compared_at),
        topic=_topic_tally(subscriber, server, result.changes),
        dead_letters=_dead_letters(sqs, dlq_url, result.changes),
    )


def _processor_environment(server: LocalMomentoServer, dlq_url: str) -> contextlib.AbstractContextManager[None]:
    """The function's configuration, as the template sets it, pointed at the local server."""
    return scoped_environment(
        {
            "MOMENTO_LOCAL_ENDPOINT": server.endpoint,
            "CACHE_NAME": CACHE_NAME,
            "TOPIC_NAME": TOPIC_NAME,
            "DLQ_URL": dlq_url,
            "TTL_ATTRIBUTE": TTL_ATTRIBUTE,
            "TABLE_NAME": TABLE_NAME,
        },
        remove=[variable.name for variable in VARIABLES],  # a key or template in the user's shell must not apply
    )


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not console.is_terminal,
    )


def main(argv: Sequence[str] | None = None, *, server: LocalMomentoServer | None = None) -> int:
    """Run, print the report, return the exit status (0: cache equals table for every key)."""
    options = parse_args(argv)
    # An explicit file: rich's progress refresh must not follow sys.stdout while the handler's is redirected.
    console = Console(file=sys.stdout) if sys.stdout.isatty() else Console(file=sys.stdout, width=120)
    result = run_demo(options, server=server, console=console)
    render(result, console)
    return result.exit_code
