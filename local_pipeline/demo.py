"""`make run`: the whole pipeline on one machine, then a report of what reached the cache and the topic.

A local Momento-compatible server and an in-process moto DynamoDB table with a NEW_AND_OLD_IMAGES stream stand in
for the cloud. The weather workload is written to the table; the event source mapping emulator drives the stream
through the real handler (``stream_processor.app.handler``) exactly as Lambda would, failures going to an SQS
on-failure destination; a subscriber on the topic (the real SDK) counts the change messages. Then every key's cache
entry is compared with the table. Optionally the server fails a share of Momento calls, and the DLQ is redriven.
No AWS account, credentials or Docker: fake credentials are set in-process for moto, and restored afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from local_pipeline.comparison import Comparison, compare
from local_pipeline.event_source_mapping import Handler, MappingReport, MappingSettings, StreamEventSourceMapping
from local_pipeline.handler_log import HandlerLog, InvocationTotals
from local_pipeline.lambda_context import LambdaContext
from local_pipeline.momento_server import LocalMomentoServer, fault_rate
from local_pipeline.subscriber import TopicSubscriber
from local_pipeline.weather import KEY_ATTRIBUTE, TTL_ATTRIBUTE, WeatherTable, WriteKind, locations, plan_changes
from stream_processor.config import VARIABLES

__all__ = [
    "CACHE_NAME",
    "TABLE_NAME",
    "TOPIC_NAME",
    "DeadLetter",
    "DemoOptions",
    "DemoResult",
    "RedriveResult",
    "StreamChange",
    "TopicTally",
    "main",
    "parse_args",
    "run_demo",
]

REGION = "us-east-1"
TABLE_NAME = "weather"
CACHE_NAME = "weather-cache"
TOPIC_NAME = "weather-changes"
DLQ_NAME = "weather-stream-dlq"
#: How long to wait for the subscriber to receive what the server accepted, after processing.
SUBSCRIBER_WAIT_SECONDS = 10.0
#: A bound on the run when retries are unlimited (-1) and failures persist.
MAX_INVOCATIONS = 100_000


@dataclass(frozen=True)
class DemoOptions:
    """The run's knobs; the mapping's defaults are the template's (BatchSize 100, MaximumRetryAttempts 5, 60 s)."""

    changes: int = 300
    keys: int = 25
    batch_size: int = 100
    fault_rate: float = 0.0
    seed: int = 1
    max_retries: int = 5
    timeout_seconds: int = 60
    redrive: bool = False
    show: int = 10
    log_file: Path | None = None


@dataclass(frozen=True)
class StreamChange:
    """A stream record as the handler received it: where it sits in the stream and which key it changed."""

    sequence_number: str
    event_id: str
    event_name: str
    key: str


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message: Lambda's on-failure record (metadata only) or a poison record (with the record)."""

    kind: str  # "on-failure", "poison-record" or "unknown"
    reason: str  # the on-failure condition (RetryAttemptsExhausted, ...), the poison reason, or the message itself
    sequence_numbers: tuple[str, ...]  # the stream records it stands for
    keys: tuple[str, ...]
    invocations: int | None = None  # approximateInvokeCount of an on-failure record

    @property
    def records(self) -> int:
        return len(self.sequence_numbers)


@dataclass(frozen=True)
class TopicTally:
    """What reached the topic, from the server's log of accepted messages, and what the subscriber received."""

    accepted_by_server: int
    received: int  # by the subscriber
    distinct_changes: int  # changes with at least one accepted message
    duplicates: int
    redriven: int
    never_published: tuple[str, ...]  # sequence numbers of changes without any accepted message

    @property
    def missed_by_subscriber(self) -> int:
        return self.accepted_by_server - self.received


@dataclass(frozen=True)
class RedriveResult:
    """The redrive step: its summary text, what stayed in the DLQ, and the comparison after it."""

    summary_text: str
    messages_kept: int
    comparison: Comparison
    topic: TopicTally
    dead_letters: list[DeadLetter]


@dataclass
class DemoResult:
    """Everything the report shows; ``exit_code`` is 0 only when the cache equals the table (after any redrive)."""

    options: DemoOptions
    written: Counter[WriteKind]
    changes: dict[str, StreamChange]  # by sequence number, every record delivered at least once
    mapping: MappingReport
    handler: InvocationTotals
    momento_calls: Counter[str]
    injected_faults: Counter[str]
    topic: TopicTally
    dead_letters: list[DeadLetter]
    comparison: Comparison
    compared_at: float
    log_path: Path
    elapsed_seconds: float = 0.0
    redrive: RedriveResult | None = None
    redrive_unavailable: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changes_written(self) -> int:
        return sum(self.written.values())

    @property
    def final_comparison(self) -> Comparison:
        return self.redrive.comparison if self.redrive is not None else self.comparison

    @property
    def dlq_keys(self) -> set[str]:
        return {key for letter in self.dead_letters for key in letter.keys}

    @property
    def dlq_sequence_numbers(self) -> set[str]:
        return {number for letter in self.dead_letters for number in letter.sequence_numbers}

    @property
    def all_delivered(self) -> bool:
        return self.mapping.caught_up and len(self.changes) == self.changes_written

    @property
    def lost_publishes(self) -> list[str]:
        """Changes never published that no DLQ message accounts for (after a redrive: any never published)."""
        if self.redrive is not None:
            return list(self.redrive.topic.never_published)
        return [number for number in self.topic.never_published if number not in self.dlq_sequence_numbers]

    @property
    def exit_code(self) -> int:
        ok = self.final_comparison.all_equal and self.all_delivered and not self.lost_publishes
        return 0 if ok else 1


# -- the run ---------------------------------------------------------------------------------------------------------


def run_demo(
    options: DemoOptions, *, server: LocalMomentoServer | None = None, console: Console | None = None
) -> DemoResult:
    """Run the pipeline once; ``server``: use this running local Momento server (its cache ``weather-cache`` must be
    empty or absent) instead of starting one."""
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
        stack.enter_context(_aws_environment())
        stack.enter_context(mock_aws())
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        table, stream_arn = WeatherTable.create(boto3.client("dynamodb", region_name=REGION), TABLE_NAME)
        stack.enter_context(_processor_environment(server, dlq_url))
        log = stack.enter_context(HandlerLog(log_path).capture())
        stack.callback(_close_container)
        subscriber = stack.enter_context(TopicSubscriber(server.credential_provider(), CACHE_NAME, TOPIC_NAME))
        server.add_faults(fault_rate(options.fault_rate))
        stack.callback(server.clear_faults)

        now = time.time()
        history = plan_changes(options.changes, options.keys, random.Random(options.seed), now)
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
            handler = _recording(log.wrap(_container_handler()), changes)
            mapping = StreamEventSourceMapping(stream_arn, handler, settings)
            report = _drive(mapping, lambda: progress.update(processing, completed=len(changes)))

        topic = _topic_tally(subscriber, server, changes)
        dead_letters = _dead_letters(sqs, dlq_url, changes)
        compared_at = time.time()
        comparison = compare(locations(options.keys), table.items(), server.cache_items(CACHE_NAME), compared_at)
        result = DemoResult(
            options=options,
            written=Counter(change.kind for change in history),
            changes=changes,
            mapping=report,
            handler=log.totals(),
            momento_calls=server.calls,
            injected_faults=server.injected_faults,
            topic=topic,
            dead_letters=dead_letters,
            comparison=comparison,
            compared_at=compared_at,
            log_path=log_path,
        )
        if options.redrive:
            _redrive(result, server, table, subscriber, sqs, dlq_url)
    result.elapsed_seconds = time.perf_counter() - started
    return result


def _drive(mapping: StreamEventSourceMapping, on_progress: Callable[[], None]) -> MappingReport:
    """Poll round after round (as Lambda's pollers do) until a round finds nothing to deliver."""
    total = MappingReport()
    while total.invocations < MAX_INVOCATIONS:
        part = mapping.poll_once(max_invocations=MAX_INVOCATIONS - total.invocations)
        total.invocation_log.extend(part.invocation_log)
        total.discarded.extend(part.discarded)
        total.batches_retried += part.batches_retried
        total.bisections += part.bisections
        total.checkpoints = part.checkpoints
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
    never = tuple(number for number, change in changes.items() if change.event_id not in event_ids)
    return TopicTally(
        accepted_by_server=len(accepted),
        received=len(subscriber.messages),
        distinct_changes=len(changes) - len(never),
        duplicates=sum(count - 1 for count in event_ids.values()),
        redriven=sum(bool(message.get("redriven")) for message in accepted),
        never_published=never,
    )


def _dead_letters(sqs: Any, queue_url: str, changes: Mapping[str, StreamChange]) -> list[DeadLetter]:
    """Read every DLQ message and make it visible again (the redrive, or the user, reads them next)."""
    received: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        messages = response.get("Messages") or []
        if not messages:
            break
        received.extend(messages)
    for message in received:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return [_dead_letter(message["Body"], changes) for message in received]


def _dead_letter(body: str, changes: Mapping[str, StreamChange]) -> DeadLetter:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return DeadLetter("unknown", body[:80], (), ())
    info = document.get("DDBStreamBatchInfo")
    if isinstance(info, dict):
        first, last = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        numbers = tuple(sorted((number for number in changes if first <= int(number) <= last), key=int))
        context = document.get("requestContext", {})
        return DeadLetter(
            "on-failure",
            str(context.get("condition")),
            numbers,
            tuple(sorted({changes[number].key for number in numbers})),
            invocations=context.get("approximateInvokeCount"),
        )
    if document.get("kind") == "poison-record":
        record = document.get("record") or {}
        stream = record.get("dynamodb", {})
        key = stream.get("Keys", {}).get(KEY_ATTRIBUTE, {}).get("S")
        number = stream.get("SequenceNumber")
        return DeadLetter(
            "poison-record", str(document.get("reason")), (number,) if number else (), (key,) if key else ()
        )
    return DeadLetter("unknown", body[:80], (), ())


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


# -- environment -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _scoped_environment(values: Mapping[str, str], remove: Sequence[str] = ()) -> Iterator[None]:
    """Set and remove environment variables for the block, then put every one back as it was."""
    names = {*values, *remove}
    saved = {name: os.environ.get(name) for name in names}
    for name in remove:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _aws_environment() -> contextlib.AbstractContextManager[None]:
    """Fake credentials and a region for moto; nothing of the user's AWS set-up (profile, endpoints) leaks in."""
    endpoints = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]
    return _scoped_environment(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        },
        remove=["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", *endpoints],
    )


def _processor_environment(server: LocalMomentoServer, dlq_url: str) -> contextlib.AbstractContextManager[None]:
    """The function's configuration, as the template sets it, pointed at the local server."""
    return _scoped_environment(
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


# -- command line ----------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> DemoOptions:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(
        prog="python -m local_pipeline",
        description="Run the whole pipeline locally (local Momento server, moto DynamoDB table and stream, the real "
        "handler driven as Lambda's event source mapping would) and report whether the cache equals the table.",
    )
    parser.add_argument("--changes", type=_at_least(1), default=defaults.changes, help="table writes (default: 300)")
    parser.add_argument("--keys", type=_at_least(1), default=defaults.keys, help="distinct locations (default: 25)")
    parser.add_argument(
        "--batch-size", type=_between(1, 10_000), default=defaults.batch_size, help="BatchSize (default: 100)"
    )
    parser.add_argument(
        "--fault-rate",
        type=_rate,
        default=defaults.fault_rate,
        help="share of Momento set/delete/publish calls the server fails, mixing UNAVAILABLE, DEADLINE_EXCEEDED and "
        "rate-limit RESOURCE_EXHAUSTED (default: 0)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the workload and the faults")
    parser.add_argument(
        "--max-retries",
        type=_between(-1, 10_000),
        default=defaults.max_retries,
        help="MaximumRetryAttempts of the mapping (default: 5; -1: until the record expires)",
    )
    parser.add_argument(
        "--timeout",
        dest="timeout_seconds",
        type=_between(1, 900),
        default=defaults.timeout_seconds,
        help="the function's timeout in seconds; its retries stop in time for the reply (default: 60)",
    )
    parser.add_argument(
        "--redrive", action="store_true", help="at the end, drain the DLQ back into the cache and compare again"
    )
    parser.add_argument("--show", type=_at_least(0), default=defaults.show, help="keys listed in the report")
    parser.add_argument("--log-file", type=Path, help="where the handler's logs go (default: a new temp dir)")
    args = parser.parse_args(argv)
    return DemoOptions(**vars(args))


def _at_least(low: int) -> Callable[[str], int]:
    return _between(low, None)


def _between(low: int, high: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {low}..{high}" if high is not None else f"must be >= {low}")
        return value

    return parse


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return value


def main(argv: Sequence[str] | None = None, *, server: LocalMomentoServer | None = None) -> int:
    """Run, print the report, return the exit status (0: cache equals table for every key)."""
    from local_pipeline.report import render

    options = parse_args(argv)
    # An explicit file: rich's progress refresh must not follow sys.stdout while the handler's is redirected.
    console = Console(file=sys.stdout) if sys.stdout.isatty() else Console(file=sys.stdout, width=120)
    result = run_demo(options, server=server, console=console)
    render(result, console)
    return result.exit_code
