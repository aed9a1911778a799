"""The whole local pipeline for the no-loss properties: one container, one moto account, one DLQ per test module.

``pipeline`` (a module-scoped fixture: import it into a test module) patches the handler's container so its backoff
runs on a virtual Lambda clock with seeded jitter, and gives each run its own table. The rest reads what a run leaves
behind (cache, stream, queue) and states what must hold of it, independently of the processor's code.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from itertools import count
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from moto import mock_aws

from local_pipeline.event_source_mapping import (
    InvocationOutcome,
    MappingReport,
    MappingSettings,
    StreamEventSourceMapping,
)
from local_pipeline.lambda_context import LambdaContext
from local_pipeline.momento_server import LocalMomentoServer
from stream_processor import app, executor
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.fakes import FakeClock
from tests.histories import KEY_ATTRIBUTE, TTL_ATTRIBUTE

__all__ = [
    "MAX_IN_FLIGHT",
    "PROPERTY_SETTINGS",
    "MappingChoice",
    "Pipeline",
    "assert_first_deliveries_in_stream_order",
    "assert_handler_always_answered",
    "cache_contents",
    "drain_queue",
    "key_of",
    "mapping_choices",
    "peek_queue",
    "pipeline",
    "read_stream",
    "sequence_number",
    "unpublished",
]

MAX_IN_FLIGHT = 3  # below the number of keys in most examples: keys wait for a free slot, as in production

PROPERTY_SETTINGS = settings(
    deadline=None,  # the machine is shared: an example's duration says nothing about correctness
    database=None,  # a fixed seed, not replayed failures from an earlier run, decides what CI checks
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),  # no explain phase: it replays each failure many times
)


@dataclass
class Run:
    """The per-run parts of the patched container: the Lambda clock (virtual: moves when the handler backs off)
    and a seeded jitter for the backoff."""

    clock: FakeClock = field(default_factory=lambda: FakeClock(time.time()))
    rng: random.Random = field(default_factory=lambda: random.Random(0))


@dataclass
class Pipeline:
    """The module's container and AWS clients; each run gets its own table, and the server and queue are emptied."""

    server: LocalMomentoServer
    dynamodb: Any
    streams: Any
    sqs: Any
    queue_url: str
    run: Run
    tables: Iterator[int] = field(default_factory=count)
    handler_errors: list[str] = field(default_factory=list)

    def handler(self, event: dict[str, Any], context: LambdaContext) -> Any:
        try:
            return app.handler(event, context)
        except Exception as error:  # the handler must never raise for a record-level problem
            self.handler_errors.append(f"{type(error).__name__}: {error}")
            raise

    def table_name(self) -> str:
        return f"weather-{next(self.tables)}"

    def reset(self, seed: int) -> None:
        """A clean server (no data, messages, faults), a clean queue, and a new Lambda clock and jitter."""
        self.server.reset()
        self.server.create_cache(TEST_CACHE_NAME)
        drain_queue(self.sqs, self.queue_url)
        self.handler_errors.clear()
        self.run.clock = FakeClock(time.time())
        self.run.rng = random.Random(seed)


@pytest.fixture(scope="module")
def pipeline(momento_server_session: LocalMomentoServer) -> Iterator[Pipeline]:
    run = Run()
    execute_plan = executor.execute_plan

    def execute_on_virtual_time(plan, gateway, deadline, *, max_in_flight):
        # Seeded jitter, and backoff sleeps that move the Lambda clock on instead of waiting.
        return execute_plan(
            plan, gateway, deadline, max_in_flight=max_in_flight, rng=run.rng, sleep=lambda s: run.clock.sleep(s)
        )

    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="stream-processor-dlq")["QueueUrl"]
        for name, value in {
            "MOMENTO_LOCAL_ENDPOINT": momento_server_session.endpoint,
            "CACHE_NAME": TEST_CACHE_NAME,
            "TOPIC_NAME": TEST_TOPIC_NAME,
            "DLQ_URL": queue_url,
            "TTL_ATTRIBUTE": TTL_ATTRIBUTE,
            "MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        }.items():
            patch.setenv(name, value)
        patch.setattr(app, "execute_plan", execute_on_virtual_time)
        app.processor.cache_clear()
        try:
            yield Pipeline(
                momento_server_session,
                boto3.client("dynamodb"),
                boto3.client("dynamodbstreams"),
                sqs,
                queue_url,
                run,
            )
        finally:
            app.processor().momento.close()
            app.processor.cache_clear()


# -- what a run leaves behind ------------------------------------------------------------------------------------


def cache_contents(server: LocalMomentoServer) -> dict[str, Any]:
    """The cache's live entries, values decoded with exact numbers."""
    decimal_json = partial(json.loads, parse_float=Decimal, parse_int=Decimal)
    return {key: decimal_json(value) for key, value in server.cache_items(TEST_CACHE_NAME).items()}


def read_stream(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the stream, in order (moto gives a table's stream one shard)."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def peek_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """The queue's message bodies, leaving every message in the queue and visible."""
    received = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages", []
    ):
        received.extend(messages)
    for start in range(0, len(received), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for index, message in enumerate(received[start : start + 10])
            ],
        )
    return [json.loads(message["Body"]) for message in received]


def drain_queue(sqs: Any, queue_url: str) -> None:
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# -- what must hold ----------------------------------------------------------------------------------------------


def key_of(record: dict[str, Any]) -> str:
    return record["dynamodb"]["Keys"][KEY_ATTRIBUTE]["S"]


def sequence_number(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def unpublished(stream: Iterable[dict[str, Any]], messages: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The stream's changes no message carries (eventName, key, sequence number)."""
    published = {message["eventID"] for message in messages}
    return [
        (record["eventName"], key_of(record), record["dynamodb"]["SequenceNumber"])
        for record in stream
        if record["eventID"] not in published
    ]


def assert_first_deliveries_in_stream_order(messages: Iterable[dict[str, Any]]) -> None:
    """The stream processor's first delivery of each key's changes is in stream order (redriven ones come later)."""
    first_deliveries: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message in messages:
        if message.get("redriven") or message["eventID"] in seen:
            continue
        seen.add(message["eventID"])
        first_deliveries[message["key"]].append(int(message["sequenceNumber"]))
    for key, numbers in first_deliveries.items():
        assert numbers == sorted(numbers), f"{key}: first deliveries out of stream order: {numbers}"


def assert_handler_always_answered(handler_errors: list[str], reports: Iterable[MappingReport]) -> None:
    """No exception, no timeout, no malformed response: failures were only ever reported record by record."""
    assert handler_errors == []
    answered = {InvocationOutcome.SUCCESS, InvocationOutcome.PARTIAL_FAILURE}
    errors = [i.error for report in reports for i in report.invocation_log if i.outcome not in answered]
    assert errors == []


# -- the mapping's settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingChoice:
    """The mapping's settings for a run, its interleaving seed, and the keys its filter lets through (None: all)."""

    settings: MappingSettings
    seed: int
    mirrored: frozenset[str] | None = None

    def mirrors(self, key: str) -> bool:
        return self.mirrored is None or key in self.mirrored

    def mapping(self, stream_arn: str, pipeline: Pipeline) -> StreamEventSourceMapping:
        return StreamEventSourceMapping(
            stream_arn, pipeline.handler, self.settings, clock=pipeline.run.clock, rng=random.Random(self.seed)
        )


@st.composite
def mapping_choices(
    draw: st.DrawFn, queue_url: str, locations: Sequence[str], starting_positions: Sequence[str] = ("TRIM_HORIZON",)
) -> MappingChoice:
    """Every mapping the template allows, within what a run can exercise: small batches, bounded retries, short
    timeouts, ParallelizationFactor 1-10 with a drawn interleaving of its lanes, and sometimes a filter on the key."""
    mirrored = None
    patterns: tuple[str, ...] = ()
    if draw(st.integers(0, 3)) == 0:
        mirrored = frozenset(draw(st.lists(st.sampled_from(sorted(locations)), min_size=1, unique=True)))
        patterns = (json.dumps({"dynamodb": {"Keys": {KEY_ATTRIBUTE: {"S": sorted(mirrored)}}}}),)
    settings = MappingSettings(
        batch_size=draw(st.integers(1, 6)),
        maximum_retry_attempts=draw(st.integers(0, 3)),
        bisect_batch_on_function_error=draw(st.booleans()),
        # 2 s leaves no time to retry a publish (5 s worst case), 10 s leaves a few; cache calls get more.
        function_timeout_seconds=draw(st.sampled_from([2, 2, 6, 10])),
        on_failure_queue_url=queue_url,
        parallelization_factor=draw(st.one_of(st.just(1), st.integers(1, 10))),
        filter_patterns=patterns,
        starting_position=draw(st.sampled_from(starting_positions)),
    )
    return MappingChoice(settings, draw(st.integers(0, 2**32 - 1)), mirrored)
