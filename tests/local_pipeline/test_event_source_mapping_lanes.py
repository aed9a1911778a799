"""The emulator's ParallelizationFactor lanes, its single steps and its FilterCriteria, against a moto stream."""

from __future__ import annotations

import json
import random
from itertools import count
from typing import Any

import pytest

from local_pipeline.event_source_mapping import (
    InvocationOutcome,
    MappingReport,
    MappingSettings,
    StreamEventSourceMapping,
    lane_of,
)
from tests.local_pipeline.mapping_support import (
    Recorder,
    Table,
    dlq_messages,
    failures,
    key_of,
    sequence_of,
    settings,
    stream_sequence_numbers,
)

Delivery = tuple[str, int]  # (item key, version written)


def lane(key: str, factor: int) -> int:
    return lane_of({"dynamodb": {"Keys": {"pk": {"S": key}}}}, factor)


def keys_in_lanes(factor: int, lanes: list[int]) -> list[str]:
    """One key for each of ``lanes`` (in that order), chosen by the emulator's own routing."""
    chosen: list[str] = []
    for wanted in lanes:
        chosen.append(next(f"key{n}" for n in count() if lane(f"key{n}", factor) == wanted and f"key{n}" not in chosen))
    return chosen


def write_versions(table: Table, keys: list[str], versions: int) -> None:
    """Every key written ``versions`` times, the keys interleaved: version 0 of each, then version 1 of each..."""
    for version in range(versions):
        for key in keys:
            table.put(key, version=version)


def deliveries(recorder: Recorder) -> list[Delivery]:
    return [
        (key_of(record), int(record["dynamodb"]["NewImage"]["version"]["N"]))
        for event in recorder.events
        for record in event["Records"]
    ]


def versions_of(delivered: list[Delivery], key: str) -> list[int]:
    return [version for item, version in delivered if item == key]


# ParallelizationFactor


@pytest.mark.parametrize("factor", range(1, 11))
def test_each_items_records_keep_stream_order_under_every_parallelization_factor(table: Table, factor: int) -> None:
    keys = [f"k{index:02d}" for index in range(12)]
    write_versions(table, keys, versions=4)
    recorder = Recorder()
    config = settings(batch_size=3, parallelization_factor=factor)

    report = StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    delivered = deliveries(recorder)
    assert sorted(delivered) == sorted((key, version) for key in keys for version in range(4))  # each once
    for key in keys:
        assert versions_of(delivered, key) == [0, 1, 2, 3]
    for event, invocation in zip(recorder.events, report.invocation_log, strict=True):
        assert {lane(key_of(record), factor) for record in event["Records"]} == {invocation.lane}
        assert len(event["Records"]) <= 3
    assert {invocation.lane for invocation in report.invocation_log} == {lane(key, factor) for key in keys}
    assert list(report.checkpoints.values()) == [stream_sequence_numbers(table)[keys[-1]]]


def test_each_round_orders_its_lanes_from_the_rng_and_never_reorders_a_key(table: Table) -> None:
    keys = [f"k{index:02d}" for index in range(8)]
    write_versions(table, keys, versions=3)

    def run(seed: int) -> tuple[list[list[int]], list[Delivery]]:
        recorder = Recorder()
        config = settings(batch_size=1, parallelization_factor=4)
        mapping = StreamEventSourceMapping(table.stream_arn, recorder, config, rng=random.Random(seed))
        rounds: list[list[int]] = []
        while (report := mapping.poll_once()).invocations:
            rounds.append([invocation.lane for invocation in report.invocation_log])
        return rounds, deliveries(recorder)

    runs = {seed: run(seed) for seed in range(6)}

    assert run(3) == runs[3]  # a seed fixes the interleaving
    assert len({tuple(delivered) for _, delivered in runs.values()}) > 1  # other seeds give others
    for rounds, delivered in runs.values():
        assert sorted(delivered) == sorted((key, version) for key in keys for version in range(3))
        for key in keys:
            assert versions_of(delivered, key) == [0, 1, 2]
        assert all(len(set(lanes)) == len(lanes) for lanes in rounds)  # one batch per lane per round
        assert any(len(lanes) > 1 for lanes in rounds)


def test_a_failing_lane_retries_bisects_and_discards_alone(table: Table, dlq: str) -> None:
    bad, good = keys_in_lanes(2, [0, 1])
    write_versions(table, [bad, good], versions=2)  # bad v0, good v0, bad v1, good v1
    numbers = stream_sequence_numbers(table)

    def respond(event: dict[str, Any], call: int) -> Any:
        if any(key_of(r) == bad and r["dynamodb"]["NewImage"]["version"]["N"] == "1" for r in event["Records"]):
            raise RuntimeError("cannot process the bad key's second version")

    recorder = Recorder(respond)
    config = settings(batch_size=10, parallelization_factor=2, maximum_retry_attempts=1, on_failure_queue_url=dlq)
    mapping = StreamEventSourceMapping(table.stream_arn, recorder, config)

    report = mapping.run_until_caught_up()

    by_lane: dict[int, list[list[str]]] = {}
    for event, invocation in zip(recorder.events, report.invocation_log, strict=True):
        by_lane.setdefault(invocation.lane, []).append(
            [f"{key_of(r)}/v{r['dynamodb']['NewImage']['version']['N']}" for r in event["Records"]]
        )
    # The bad lane: the whole batch fails, is bisected, its second half retried once, then discarded.
    assert by_lane[0] == [[f"{bad}/v0", f"{bad}/v1"], [f"{bad}/v0"], [f"{bad}/v1"], [f"{bad}/v1"]]
    assert by_lane[1] == [[f"{good}/v0", f"{good}/v1"]]  # the other lane: once, untouched by the failures
    assert (report.bisections, report.batches_retried) == (1, 1)
    (message,) = dlq_messages(dlq)
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        numbers[bad],
        numbers[bad],
        1,
    )
    assert report.discarded[0].lane == 0
    assert list(report.checkpoints.values()) == [numbers[good]]  # the last record: every lane is done


def test_a_discarded_lane_batch_names_its_own_first_and_last_records(table: Table, dlq: str) -> None:
    bad, good = keys_in_lanes(2, [0, 1])
    written: list[str] = []
    for key, version in ((bad, 0), (good, 0), (bad, 1), (good, 1)):
        table.put(key, version=version)
        written.append(stream_sequence_numbers(table)[key])
    first_bad, other_lane, last_bad, _ = written

    def respond(event: dict[str, Any], call: int) -> Any:
        if key_of(event["Records"][0]) == bad:
            raise RuntimeError("the bad lane always fails")

    config = settings(
        parallelization_factor=2,
        maximum_retry_attempts=0,
        bisect_batch_on_function_error=False,
        on_failure_queue_url=dlq,
    )
    StreamEventSourceMapping(table.stream_arn, Recorder(respond), config).run_until_caught_up()

    (message,) = dlq_messages(dlq)
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (first_bad, last_bad, 2)
    assert int(first_bad) < int(other_lane) < int(last_bad)  # the range also covers a record of the other lane


def test_the_shard_checkpoint_waits_for_the_slowest_lane(table: Table) -> None:
    slow, fast = keys_in_lanes(2, [0, 1])
    write_versions(table, [slow, fast], versions=1)
    healthy = {"now": False}

    def respond(event: dict[str, Any], call: int) -> Any:
        if key_of(event["Records"][0]) == slow and not healthy["now"]:
            return failures(sequence_of(event, slow))

    recorder = Recorder(respond)
    config = settings(parallelization_factor=2, maximum_retry_attempts=-1)
    mapping = StreamEventSourceMapping(table.stream_arn, recorder, config)

    stuck = mapping.run_until_caught_up(max_invocations=6)
    assert not stuck.caught_up
    assert [key for keys in recorder.batches() for key in keys].count(fast) == 1
    assert list(stuck.checkpoints.values()) == [None]  # the slow lane holds the shard's first record

    healthy["now"] = True
    assert mapping.run_until_caught_up().caught_up
    assert list(mapping.checkpoints.values()) == [stream_sequence_numbers(table)[fast]]


# Single steps


def test_deliver_one_is_one_invocation_and_sees_records_written_between_steps(table: Table) -> None:
    table.put("k0")
    table.put("k1")
    recorder = Recorder()
    mapping = StreamEventSourceMapping(table.stream_arn, recorder, settings(batch_size=1))

    steps = [mapping.deliver_one()]
    table.put("k2")  # a live write between two steps
    steps += [mapping.deliver_one() for _ in range(3)]

    assert [step.invocations for step in steps] == [1, 1, 1, 0]
    assert recorder.batches() == [["k0"], ["k1"], ["k2"]]
    assert steps[-1] == MappingReport(checkpoints=steps[-1].checkpoints)  # nothing left: an empty report
    assert list(steps[-1].checkpoints.values()) == [stream_sequence_numbers(table)["k2"]]


def test_poll_once_finishes_the_round_deliver_one_started(table: Table) -> None:
    keys = keys_in_lanes(3, [0, 1, 2])
    write_versions(table, keys, versions=2)
    recorder = Recorder()
    mapping = StreamEventSourceMapping(table.stream_arn, recorder, settings(batch_size=1, parallelization_factor=3))

    first = mapping.deliver_one()
    rest_of_round = mapping.poll_once()
    next_round = mapping.poll_once()

    assert (first.invocations, rest_of_round.invocations, next_round.invocations) == (1, 2, 3)
    first_round = recorder.batches()[:3]
    assert sorted(first_round) == [[key] for key in sorted(keys)]  # one batch per lane, each lane once
    assert mapping.poll_once().invocations == 0


def test_reports_add_up(table: Table) -> None:
    table.put_many(3)
    mapping = StreamEventSourceMapping(table.stream_arn, Recorder(), settings(batch_size=1))
    total = MappingReport()

    for _ in range(4):
        total.extend(mapping.deliver_one())

    assert (total.invocations, total.records_delivered, total.caught_up) == (3, 3, True)
    assert total.checkpoints == mapping.checkpoints


# FilterCriteria


def pattern(document: dict[str, Any]) -> str:
    return json.dumps(document)


def test_filtered_out_records_are_checkpointed_and_never_delivered(table: Table) -> None:
    table.put("k0", version=0)  # INSERT
    table.put("k0", version=1)  # MODIFY
    table.delete("k0")  # REMOVE: filtered out
    table.put("k1", version=0)  # INSERT
    table.delete("k1")  # REMOVE: filtered out, last in the stream
    recorder = Recorder()
    config = settings(filter_patterns=(pattern({"eventName": ["INSERT", "MODIFY"]}),))

    report = StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    assert [[r["eventName"] for r in event["Records"]] for event in recorder.events] == [["INSERT", "MODIFY", "INSERT"]]
    assert report.records_filtered == 2
    assert report.records_delivered == 3
    assert list(report.checkpoints.values()) == [stream_sequence_numbers(table)["k1"]]  # past the filtered REMOVE


def test_a_stream_with_only_filtered_records_invokes_nothing_and_checkpoints_them(table: Table) -> None:
    table.put_many(3)
    recorder = Recorder()
    config = settings(filter_patterns=(pattern({"eventName": ["REMOVE"]}),))

    report = StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    assert recorder.events == []
    assert report.records_filtered == 3
    assert list(report.checkpoints.values()) == [stream_sequence_numbers(table)["k02"]]


def test_filters_match_the_typed_json_of_the_event_are_ored_and_apply_before_batching(table: Table) -> None:
    for index, status in enumerate(["shipped", "open", "cancelled", "open", "shipped", "open"]):
        table.put(f"k{index}", status=status)
    recorder = Recorder()
    config = settings(
        batch_size=2,
        filter_patterns=(
            pattern({"dynamodb": {"NewImage": {"status": {"S": ["shipped"]}}}}),
            pattern({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "k2"}]}}}}),
        ),
    )

    report = StreamEventSourceMapping(table.stream_arn, recorder, config).run_until_caught_up()

    assert recorder.batches() == [["k0", "k2"], ["k4"]]  # batches of matching records only
    assert report.records_filtered == 3


def test_filters_and_lanes_together_keep_each_items_order(table: Table) -> None:
    keys = [f"k{index:02d}" for index in range(10)]
    write_versions(table, keys, versions=3)
    for key in keys[:5]:
        table.delete(key)
    recorder = Recorder()
    config = settings(batch_size=2, parallelization_factor=5, filter_patterns=(pattern({"eventName": ["MODIFY"]}),))

    report = StreamEventSourceMapping(table.stream_arn, recorder, config, rng=random.Random(7)).run_until_caught_up()

    delivered = deliveries(recorder)
    for key in keys:
        assert versions_of(delivered, key) == [1, 2]
    assert report.records_filtered == 10 + 5  # the INSERTs and the REMOVEs
    assert all(invocation.outcome is InvocationOutcome.SUCCESS for invocation in report.invocation_log)


@pytest.mark.parametrize(
    ("patterns", "complaint"),
    [
        ((pattern({"eventName": ["INSERT"]}),) * 6, "at most 5 filters"),
        (("not json",), "not valid JSON"),
        (('["INSERT"]',), "must be a JSON object"),
        ((pattern({"eventName": "INSERT"}),), "must be an object or an array"),
        ((pattern({"eventName": []}),), "Empty arrays are not allowed"),
        ((pattern({"eventName": ["x" * 4096]}),), "more than 4096"),
        ((json.loads('{"eventName": ["INSERT"]}'),), "must be a JSON string"),
        (pattern({"eventName": ["INSERT"]}), "sequence of JSON pattern strings"),
    ],
    ids=["six-filters", "not-json", "not-an-object", "scalar-value", "empty-array", "too-long", "dict", "bare-string"],
)
def test_filter_settings_are_checked_like_lambda(patterns: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match="filter_patterns") as raised:
        MappingSettings(filter_patterns=patterns)
    assert complaint in str(raised.value)


def test_five_filters_and_a_list_are_accepted() -> None:
    settings_ = MappingSettings(filter_patterns=[pattern({"eventName": [name]}) for name in "ABCDE"])  # type: ignore[arg-type]

    assert len(settings_.filter_patterns) == 5
    assert isinstance(settings_.filter_patterns, tuple)
    assert hash(settings_)
