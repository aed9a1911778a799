"""Proof that the out-of-band writers are safe on a live table: random histories x random interleavings.

Each example starts from a table that may already hold data, creates the mapping (TRIM_HORIZON, or LATEST as in the
adoption path, where the backfill is then required), and runs a random schedule of steps while the local Momento
server follows a random fault schedule:

- ``Write``: the next writes of the history reach the table (the live application);
- ``Stream`` / ``StreamAll``: the stream processor runs one invocation, or until it has caught up (ParallelizationFactor
  1-10 with a drawn interleaving of its lanes, sometimes a key filter): lagging behind, retrying, or ahead;
- ``BackfillPage``: one page of the backfill (a new run once the last one completed);
- ``RedriveRun``: the redrive drains the dead-letter queue.

A backfill page or a redrive may run with its first cache write *held* in the server while ``meanwhile`` steps run
— table writes (``ChangeHeldKey`` changes exactly the key whose write is held), stream invocations — and only then
lands: the interleaving in which a blind out-of-band write would leave an older value in the cache. When the
schedule is done, everything goes quiet as an operator would make it: the rest of the history is written, the faults
stop, the stream processor catches up, the backfill completes (always, with LATEST) and the redrive empties the
queue. Then the cache must equal the table for every key the filter lets through, and every change the mapping saw
must have been published at least once. ``test_the_property_catches_a_blind_out_of_band_write`` plants exactly that
bug (write without re-checking) and shows the property fails.

Runs: a fixed seed and ``NO_LOSS_LIVE_EXAMPLES`` (default 100) examples; ``NO_LOSS_SEED`` explores others.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import Phase, event, given, seed, settings
from hypothesis import strategies as st
from momento import Configurations

from local_pipeline.event_source_mapping import MappingReport, StreamEventSourceMapping, lambda_record
from local_pipeline.momento_server import LocalMomentoServer
from stream_processor.backfill import Backfill, BackfillState, TableInfo
from stream_processor.backfill.summary import BackfillSummary
from stream_processor.config import Settings, load_settings
from stream_processor.key_sync import KeySync
from stream_processor.momento_clients import MomentoRuntime
from stream_processor.redrive import Redrive, RedriveOptions
from stream_processor.table_reads import TableReader
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.fakes import FakeClock
from tests.histories import (
    TTL_ATTRIBUTE,
    FaultSchedule,
    Update,
    Write,
    attribute_sets,
    create_table,
    fault_schedules,
    histories,
    table_state,
    write_history,
)
from tests.pipeline import (
    PROPERTY_SETTINGS,
    MappingChoice,
    Pipeline,
    assert_first_deliveries_in_stream_order,
    assert_handler_always_answered,
    cache_contents,
    key_of,
    mapping_choices,
    peek_queue,
    pipeline,
    published_changes,
    read_stream,
    unpublished,
)
from tests.races import resync_without_recheck, while_held

__all__ = ["pipeline"]  # the module-scoped fixture, imported so pytest finds it here

EXAMPLES = int(os.environ.get("NO_LOSS_LIVE_EXAMPLES", "100"))
SEED = int(os.environ.get("NO_LOSS_SEED", "20240611"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600 + 6 * EXAMPLES)]


# -- the steps -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteNext:
    """The next ``count`` writes of the history reach the table."""

    count: int


@dataclass(frozen=True)
class Stream:
    """The stream processor: ``invocations`` single invocations of the mapping."""

    invocations: int


@dataclass(frozen=True)
class StreamAll:
    """The stream processor catches up with everything in the stream."""


@dataclass(frozen=True)
class ChangeHeldKey:
    """A live write to the key whose out-of-band cache write is held (nothing when no write is held)."""

    attributes: dict[str, Any]


@dataclass(frozen=True)
class BackfillPage:
    """One page of the backfill; with ``meanwhile``, its first cache write is held while those steps run."""

    meanwhile: tuple[Any, ...] = ()


@dataclass(frozen=True)
class RedriveRun:
    """The redrive drains the queue; with ``meanwhile``, its first cache write is held while those steps run."""

    meanwhile: tuple[Any, ...] = ()


_meanwhile = st.lists(
    st.one_of(
        st.builds(WriteNext, st.integers(1, 2)),
        st.builds(Stream, st.integers(1, 2)),
        st.just(StreamAll()),
        st.builds(ChangeHeldKey, attribute_sets()),
    ),
    min_size=1,
    max_size=3,
).map(tuple)
_steps = st.lists(
    st.one_of(
        st.builds(WriteNext, st.integers(1, 3)),
        st.builds(Stream, st.integers(1, 3)),
        st.just(StreamAll()),
        st.builds(BackfillPage, st.one_of(st.just(()), _meanwhile)),
        st.builds(RedriveRun, st.one_of(st.just(()), _meanwhile)),
    ),
    min_size=1,
    max_size=10,
)


@dataclass(frozen=True)
class Scenario:
    writes: list[Write]
    existing: int  # how many writes the table held before the mapping was created
    steps: list[Any]
    schedule: FaultSchedule
    mapping: MappingChoice
    page_size: int


@st.composite
def scenarios(draw: st.DrawFn, queue_url: str) -> Scenario:
    locations, writes = draw(histories(max_writes=16))
    return Scenario(
        writes=writes,
        existing=draw(st.integers(0, len(writes))),
        steps=draw(_steps),
        schedule=draw(fault_schedules(locations)),
        mapping=draw(mapping_choices(queue_url, locations, starting_positions=("TRIM_HORIZON", "LATEST"))),
        page_size=draw(st.integers(1, 4)),
    )


# -- the out-of-band writers' container ----------------------------------------------------------------------------


@dataclass
class OutOfBand:
    """The backfill's and redrive's own container: settings (one key at a time) and Momento clients on their loop."""

    settings: Settings
    momento: MomentoRuntime


@pytest.fixture(scope="module")
def out_of_band(pipeline: Pipeline, momento_server_session: LocalMomentoServer):
    settings = load_settings(
        {
            "MOMENTO_LOCAL_ENDPOINT": momento_server_session.endpoint,
            "CACHE_NAME": TEST_CACHE_NAME,
            "TOPIC_NAME": TEST_TOPIC_NAME,
            "DLQ_URL": pipeline.queue_url,
            "TTL_ATTRIBUTE": TTL_ATTRIBUTE,
            # One key at a time: while its write is held, the writer does nothing else (no other moto calls race
            # with the test thread's).
            "MAX_IN_FLIGHT": "1",
        }
    )
    # A held write must not time out in the client while the test runs the steps meanwhile: its retry would land
    # first and the held original after it, a late write the re-check cannot see (README, Guarantees).
    patient = Configurations.Lambda.latest().with_client_timeout(timedelta(seconds=15))
    momento = MomentoRuntime.from_settings(settings, cache_configuration=patient)
    yield OutOfBand(settings, momento)
    momento.close()


# -- one run -------------------------------------------------------------------------------------------------------


@dataclass
class LiveRun:
    """One example: the table, the mapping, and the writers' progress."""

    pipeline: Pipeline
    out_of_band: OutOfBand
    scenario: Scenario
    table: str
    stream_arn: str
    now: float
    mapping: StreamEventSourceMapping | None = None
    written: int = 0
    reports: list[MappingReport] = field(default_factory=list)
    backfill_state: BackfillState | None = None
    backfill_summaries: list[BackfillSummary] = field(default_factory=list)
    clock: FakeClock = field(default_factory=lambda: FakeClock(time.time()))  # the writers' backoff clock
    holds: int = 0

    # -- steps

    def run(self, step: Any, held: list[tuple[str, str | None]] | None = None) -> None:
        assert self.mapping is not None
        if isinstance(step, WriteNext):
            self.write_next(step.count)
        elif isinstance(step, Stream):
            for _ in range(step.invocations):
                self.reports.append(self.mapping.deliver_one())
        elif isinstance(step, StreamAll):
            self.reports.append(self.mapping.run_until_caught_up(max_invocations=500))
        elif isinstance(step, ChangeHeldKey):
            if held and held[0][1] is not None:
                write_history(
                    self.pipeline.dynamodb, self.table, [Update(held[0][1], step.attributes, "keep")], self.now
                )
        elif isinstance(step, BackfillPage):
            self.out_of_band_step(self.backfill_writer(pages=1), step.meanwhile)
        elif isinstance(step, RedriveRun):
            self.out_of_band_step(self.redrive_writer(), step.meanwhile)
        else:  # pragma: no cover - the strategy draws only the steps above
            raise AssertionError(f"unknown step {step!r}")

    def write_next(self, count: int) -> None:
        part = self.scenario.writes[self.written : self.written + count]
        write_history(self.pipeline.dynamodb, self.table, part, self.now)
        self.written += len(part)

    def out_of_band_step(self, writer: Any, meanwhile: tuple[Any, ...]) -> None:
        if not meanwhile:
            writer()
            return

        def during_hold(held: list[tuple[str, str | None]]) -> None:
            self.holds += bool(held)
            for step in meanwhile:
                self.run(step, held)

        while_held(self.pipeline.server, writer, during_hold)

    # -- the writers

    def backfill_writer(self, pages: int | None):
        """A backfill continuing the current run (a new run once the last one completed), ``pages`` pages at most."""
        if self.backfill_state is None or self.backfill_state.complete:
            self.backfill_state = BackfillState.new(self.table, 1)
        state = self.backfill_state
        left = [math.inf if pages is None else pages]
        dynamodb = self.pipeline.dynamodb
        backfill = Backfill(
            self.out_of_band.settings,
            self.out_of_band.momento,
            TableInfo.describe(dynamodb, self.table),
            dynamodb=dynamodb,
            rate=math.inf,
            read_rate=math.inf,
            page_size=self.scenario.page_size,
            table_reader=TableReader(lambda: dynamodb),
            clock=self.clock,
            sleep=self.clock.sleep,
            should_stop=lambda: None if left[0] > 0 else "one page per step",
            on_page=lambda _state, _items: left.__setitem__(0, left[0] - 1),
        )

        def run() -> None:
            self.backfill_summaries.append(self.out_of_band.momento.run(backfill.run(state)))

        return run

    def redrive_writer(self):
        pipeline = self.pipeline
        redrive = Redrive(
            self.out_of_band.settings,
            self.out_of_band.momento,
            sqs=pipeline.sqs,
            streams=pipeline.streams,
            table_reader=TableReader(lambda: pipeline.dynamodb),
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        return lambda: redrive.run(RedriveOptions(queue_url=pipeline.queue_url, wait_seconds=0))

    # -- quiet

    def quiesce(self) -> list[Any]:
        """What an operator does once the dust settles; returns the last redrive's summary's kept messages."""
        self.write_next(len(self.scenario.writes))
        self.pipeline.server.clear_faults()
        assert self.mapping is not None
        self.reports.append(self.mapping.run_until_caught_up())
        latest = self.scenario.mapping.settings.starting_position == "LATEST"
        if (self.backfill_state is None and latest) or (self.backfill_state and not self.backfill_state.complete):
            self.backfill_writer(pages=None)()  # finish the run under way (with LATEST, a backfill is required)
        kept: list[Any] = []
        for _ in range(4):  # poison re-sent by a run is left for the next one
            kept = self.redrive_writer()().kept
            if not peek_queue(self.pipeline.sqs, self.pipeline.queue_url):
                break
        return kept


def run_live(pipeline: Pipeline, out_of_band: OutOfBand, scenario: Scenario) -> dict[str, Any]:
    """Run a scenario and observe; returns what the assertions need."""
    pipeline.reset(seed=len(scenario.writes), packed=scenario.mapping.packed)
    table = pipeline.table_name()
    stream_arn = create_table(pipeline.dynamodb, table)
    run = LiveRun(pipeline, out_of_band, scenario, table, stream_arn, time.time())
    try:
        run.write_next(scenario.existing)
        existing_records = len(read_stream(pipeline.streams, stream_arn))
        run.mapping = scenario.mapping.mapping(stream_arn, pipeline)  # LATEST starts after the existing data
        pipeline.server.add_faults([*scenario.schedule.poison_rules, *scenario.schedule.transient_rules])
        for step in scenario.steps:
            run.run(step)
        kept = run.quiesce()
        stream = [lambda_record(record, stream_arn) for record in read_stream(pipeline.streams, stream_arn)]
        seen = stream if scenario.mapping.settings.starting_position == "TRIM_HORIZON" else stream[existing_records:]
        observed_at = time.time()
        cache = cache_contents(pipeline.server)
        return {
            "run": run,
            "kept": kept,
            "queue": peek_queue(pipeline.sqs, pipeline.queue_url),
            "stream": stream,
            "seen": seen,
            "cache": cache,
            "ttls": {key: pipeline.server.ttl_remaining_seconds(TEST_CACHE_NAME, key) for key in cache},
            "table": table_state(pipeline.dynamodb, table, observed_at),
            "messages": published_changes(pipeline.server),
            "observed_at": observed_at,
        }
    finally:
        pipeline.server.clear_faults()
        pipeline.dynamodb.delete_table(TableName=table)


def check(outcome: dict[str, Any], scenario: Scenario) -> None:
    """What must hold once everything is quiet."""
    run: LiveRun = outcome["run"]
    mirrors = scenario.mapping.mirrors
    assert_handler_always_answered(run.pipeline.handler_errors, run.reports)
    assert outcome["kept"] == [] and outcome["queue"] == [], f"the redrive left messages: {outcome['queue']}"
    if run.backfill_summaries:
        last = run.backfill_summaries[-1]
        assert last.complete and not last.failures, last.text()

    table = {key: item for key, item in outcome["table"].items() if mirrors(key)}
    cache = {key: value for key, value in outcome["cache"].items() if mirrors(key)}
    divergent = sorted(key for key in {*table, *cache} if table.get(key) != cache.get(key))
    assert not divergent, f"the cache differs from the table for {divergent}: cache {cache}, table {table}"
    for key, item in table.items():
        expires_at = item.get(TTL_ATTRIBUTE)
        if expires_at is not None:
            remaining = outcome["ttls"][key]
            assert remaining <= float(expires_at) - outcome["observed_at"] + 1, f"{key} outlives its TTL"

    by_event_id = {record["eventID"]: record for record in outcome["stream"]}
    for message in outcome["messages"]:
        if message["eventName"] == "RESYNC":  # the redrive's resync of a backfill poison item: not a stream record
            assert message["redriven"] is True
            continue
        record = by_event_id.get(message["eventID"])
        assert record is not None, f"a message for no change of the stream: {message}"
        assert message["key"] == key_of(record)
    lost = unpublished([record for record in outcome["seen"] if mirrors(key_of(record))], outcome["messages"])
    assert not lost, f"changes never published: {lost}"
    assert_first_deliveries_in_stream_order(outcome["messages"])


def describe(outcome: dict[str, Any], scenario: Scenario) -> None:
    run: LiveRun = outcome["run"]
    event(f"held out-of-band writes: {min(run.holds, 2)}{'+' if run.holds > 2 else ''}")
    event(f"starting position {scenario.mapping.settings.starting_position}")
    rewrites = sum(summary.rewrites for summary in run.backfill_summaries)
    event(f"backfill rewrites: {'some' if rewrites else 'none'}")


# -- the properties --------------------------------------------------------------------------------------------------


@seed(SEED)
@settings(PROPERTY_SETTINGS, max_examples=EXAMPLES)
@given(data=st.data())
def test_the_cache_ends_equal_to_the_table_whatever_the_interleaving(
    pipeline: Pipeline, out_of_band: OutOfBand, data: st.DataObject
) -> None:
    scenario = data.draw(scenarios(pipeline.queue_url), label="scenario")

    outcome = run_live(pipeline, out_of_band, scenario)
    describe(outcome, scenario)

    check(outcome, scenario)


def test_the_property_catches_a_blind_out_of_band_write(
    pipeline: Pipeline, out_of_band: OutOfBand, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeySync, "resync", resync_without_recheck)

    @seed(SEED)
    @settings(PROPERTY_SETTINGS, max_examples=max(EXAMPLES, 200), phases=(Phase.generate,))
    @given(data=st.data())
    def property_with_the_bug(data: st.DataObject) -> None:
        scenario = data.draw(scenarios(pipeline.queue_url), label="scenario")
        check(run_live(pipeline, out_of_band, scenario), scenario)

    with pytest.raises(AssertionError, match="the cache differs from the table"):
        property_with_the_bug()
