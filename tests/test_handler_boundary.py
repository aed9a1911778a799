"""Any JSON in, a response out: the real handler on batches of valid records mixed with any malformed JSON at all.

Through the real SDK over gRPC to the local Momento server and SQS in moto. Hypothesis builds batches of valid records
(every DynamoDB type, repeated keys, duplicate sequence numbers) mixed with malformed ones: any JSON in any field of an
otherwise valid record (lone surrogates, huge numbers, deep nesting, every JSON type), values DynamoDB never sends, and
whole records that are any JSON at all. Whatever the batch holds:

- the handler returns ``{"batchItemFailures": [...]}`` and never raises;
- every valid record is processed: its key ends with the right cache value, its messages published in stream order;
- every malformed record is in the DLQ with its reason (valid UTF-8 JSON holding the very record), or reported when
  there is no DLQ (or, when the mutation left it valid after all, processed);
- no reason is the "unexpected error" safety net, and no log line above DEBUG shows an attribute value.

Examples are drawn from a fixed seed (``derandomize``) so a CI run is reproducible; the two tests take about 20-40 s.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stream_processor.planner import UNREADABLE_RECORD
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.dynamodb_values import any_json, attribute_values, nested
from tests.oracles import plain
from tests.stream_processor.records import WEATHER_STREAM_ARN

pytestmark = pytest.mark.slow

#: Cache keys of valid records: nothing a malformed record can be mutated into.
VALID_KEYS = [f"valid-key-{n}-Ω" for n in range(4)]
#: In every image: a value that must never reach a log line (DEBUG aside).
MARKER = "marker-value-7c1e"
FIRST_SEQUENCE = 49_668_178_592_157_356_446  # 20 digits, like the stream's


def boundary_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- records ------------------------------------------------------------------------------------------------------

attribute_names = st.text(min_size=1, max_size=6).filter(lambda name: name != "Location")
images = st.dictionaries(attribute_names, attribute_values, max_size=4)


@st.composite
def valid_records(draw: st.DrawFn, key: str) -> dict[str, Any]:
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    location = {"Location": {"S": key}}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": draw(st.integers(1_700_000_000, 1_800_000_000)),
        "Keys": location,
        "SizeBytes": 64,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event_name != "REMOVE":
        dynamodb["NewImage"] = {**location, **draw(images), "Note": {"S": MARKER}}
    if event_name != "INSERT":
        dynamodb["OldImage"] = {**location, **draw(images), "Note": {"S": MARKER}}
    record = {
        "eventID": "",  # set with the sequence number
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": WEATHER_STREAM_ARN,
    }
    if event_name == "REMOVE" and draw(st.booleans()):
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


#: Values DynamoDB never sends in place of an attribute value, and JSON that stresses a reader.
odd_attribute_values = st.sampled_from(
    [
        {"N": True},
        {"N": 1},
        {"N": "1" * 39},
        {"N": "1E+126"},
        {"N": MARKER},
        {"NS": [False, "2"]},
        {"NS": []},
        {"SS": []},
        {"B": "abc"},
        {"B": MARKER},
        {"BS": ["AA==", 1]},
        {"NULL": False},
        {"BOOL": "true"},
        {"S": "lone \ud800"},
        {"S": MARKER, "N": "1"},
        {"L": [{"M": {"x": {"N": "x"}}}]},
        {"M": {"\udfff": {"S": "x"}}},
    ]
)
odd_json = st.one_of(
    st.sampled_from(["\ud800", "9" * 5000, "-1", "", "1e5", "١٢٣", 10**40, -1, 0.5, True, None, [], {}]),
    st.builds(nested, st.integers(100, 600), any_json),
)


def paths_of(record: dict[str, Any]) -> list[list[tuple[str, ...]]]:
    """The fields of a record a mutation may hit: the record's own, the stream data's, the attributes' (and values)."""
    dynamodb = record["dynamodb"]
    attributes = [("dynamodb", "Keys", "Location"), ("dynamodb", "Keys", "Location", "S")]
    for image in ("NewImage", "OldImage"):
        for name, value in dynamodb.get(image, {}).items():
            attributes += [("dynamodb", image, name), ("dynamodb", image, name, next(iter(value)))]
    return [[(name,) for name in record], [("dynamodb", name) for name in dynamodb], attributes]


@st.composite
def malformed_records(draw: st.DrawFn, key: str) -> Any:
    """Any JSON as a record, or an otherwise valid record with one field replaced by any JSON, or removed."""
    if draw(st.integers(0, 7)) == 0:
        return draw(any_json)
    # Copies: strategies may hand out the same object twice (st.just, st.sampled_from), and a mutation must not
    # reach into another record or a later example.
    record = copy.deepcopy(draw(valid_records(key)))
    path = draw(st.sampled_from(draw(st.sampled_from(paths_of(record)))))
    parent = record
    for name in path[:-1]:
        parent = parent[name]
    how = draw(st.sampled_from(["any", "odd", "odd attribute", "delete"]))
    if how == "delete":
        del parent[path[-1]]
    elif how == "odd attribute" and len(path) == 3 and path[1] != "Keys":
        parent[path[-1]] = copy.deepcopy(draw(odd_attribute_values))
    else:
        parent[path[-1]] = copy.deepcopy(draw(odd_json if how == "odd" else any_json))
    return record


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[Any], list[int]]:
    """A batch in stream order and the positions of its malformed records."""
    count = draw(st.integers(1, 10))
    is_malformed = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    records: list[Any] = []
    sequence = FIRST_SEQUENCE
    for position, malformed in enumerate(is_malformed):
        if malformed:
            record = draw(malformed_records(f"bad-{position}"))
        else:
            record = draw(valid_records(draw(st.sampled_from(VALID_KEYS))))
        if draw(st.integers(0, 5)) != 0:  # now and then a duplicate sequence number
            sequence += draw(st.integers(1, 10**6))
        if isinstance(record, dict) and isinstance(record.get("dynamodb"), dict):
            record["eventID"] = record.get("eventID") or f"{position:032x}"
            record["dynamodb"].setdefault("SequenceNumber", str(sequence))
        records.append(record)
    return records, [position for position, malformed in enumerate(is_malformed) if malformed]


# --- the oracle -------------------------------------------------------------------------------------------------


def loads_exact(text: bytes | str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def expected_state(valid: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Per valid key: the final cache value (absent after a REMOVE), and its changes' eventIDs in stream order."""
    final: dict[str, Any] = {}
    changes: dict[str, list[str]] = {}
    for record in valid:
        key = record["dynamodb"]["Keys"]["Location"]["S"]
        new_image = record["dynamodb"].get("NewImage")
        final[key] = None if new_image is None else {name: plain(value) for name, value in new_image.items()}
        changes.setdefault(key, []).append(record["eventID"])
    return {key: value for key, value in final.items() if value is not None}, changes


def drain(dead_letter_queue) -> list[str]:
    """Every message body in the DLQ, raw, removing them."""
    bodies = []
    while True:
        response = dead_letter_queue.sqs.receive_message(QueueUrl=dead_letter_queue.url, MaxNumberOfMessages=10)
        messages = response.get("Messages") or []
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            dead_letter_queue.sqs.delete_message(QueueUrl=dead_letter_queue.url, ReceiptHandle=message["ReceiptHandle"])


def run_batch(handler, momento_server, lambda_context, capsys, records: list[Any]) -> list[str]:
    """Run the handler on a batch of these records."""
    return run_event(handler, momento_server, lambda_context, capsys, {"Records": records})


def run_event(handler, momento_server, lambda_context, capsys, event: Any) -> list[str]:
    """Run the handler on any event with a clean server; the reported identifiers, once the response is checked."""
    momento_server.reset()
    momento_server.create_cache(TEST_CACHE_NAME)
    capsys.readouterr()
    response = handler(event, lambda_context())
    assert isinstance(response, dict) and list(response) == ["batchItemFailures"]
    assert all(
        set(item) == {"itemIdentifier"} and isinstance(item["itemIdentifier"], str)
        for item in response["batchItemFailures"]
    )
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def check_valid_records(momento_server, records: list[Any], malformed: list[int]) -> list[dict[str, Any]]:
    """Every valid key holds its last change's image and got its messages in stream order; the published messages."""
    valid = [record for position, record in enumerate(records) if position not in malformed]
    final, changes = expected_state(valid)
    cached = {key: loads_exact(value) for key, value in momento_server.cache_items(TEST_CACHE_NAME).items()}
    assert {key: value for key, value in cached.items() if key in VALID_KEYS} == final
    published = [json.loads(message) for message in momento_server.published(TEST_CACHE_NAME, TEST_TOPIC_NAME)]
    got = {key: [m["eventID"] for m in published if m["key"] == key] for key in changes}
    assert got == changes
    return published


def processed(record: Any, published: list[dict[str, Any]]) -> bool:
    """A mutation that left the record valid: its change was published."""
    event_id = record.get("eventID") if isinstance(record, dict) else None
    return isinstance(event_id, str) and any(message["eventID"] == event_id for message in published)


def check_logs(capsys) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    leaking = [line for line in lines if line.get("level") != "DEBUG" and MARKER in json.dumps(line)]
    assert leaking == []
    return lines


# --- the properties ------------------------------------------------------------------------------------------------


@boundary_settings(max_examples=300)
@given(batch=batches())
def test_every_batch_gets_a_response_valid_records_land_and_malformed_ones_reach_the_dlq(
    handler, momento_server, dead_letter_queue, lambda_context, capsys, batch
):
    records, malformed = batch
    drain(dead_letter_queue)

    reported = run_batch(handler, momento_server, lambda_context, capsys, records)

    assert reported == []  # poison is handled by the DLQ; nothing systemic happened
    published = check_valid_records(momento_server, records, malformed)
    raw_bodies = drain(dead_letter_queue)
    bodies = [json.loads(body.encode("utf-8")) for body in raw_bodies]  # valid UTF-8 JSON, whatever the record
    for position in malformed:
        record = records[position]
        match = next((body for body in bodies if body["record"] == record), None)
        if match is None:
            assert processed(record, published), f"malformed record {position} is neither dead-lettered nor processed"
            event("a mutation left the record valid: processed")
            continue
        event(f"dead-lettered: {match['reason'][:45]}")
        bodies.remove(match)
        assert match["kind"] == "poison-record"
        assert isinstance(match["reason"], str) and match["reason"]
        assert not match["reason"].startswith(UNREADABLE_RECORD), match["reason"]
        assert MARKER not in match["reason"]
    assert bodies == []  # no valid record was dead-lettered
    check_logs(capsys)


@pytest.fixture
def handler_without_dlq(handler_env):
    return handler_env(DLQ_URL="")


@boundary_settings(max_examples=80)
@given(batch=batches())
def test_without_a_dlq_malformed_records_are_reported_and_valid_ones_land(
    handler_without_dlq, momento_server, lambda_context, capsys, batch
):
    records, malformed = batch
    handler = handler_without_dlq

    reported = run_batch(handler, momento_server, lambda_context, capsys, records)

    published = check_valid_records(momento_server, records, malformed)
    for position in malformed:
        record = records[position]
        dynamodb = record.get("dynamodb") if isinstance(record, dict) else None
        sequence_number = dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None
        numbered = isinstance(sequence_number, str) and sequence_number.isascii() and sequence_number.isdigit()
        identifier = sequence_number if numbered else ""
        assert processed(record, published) or identifier in reported, f"malformed record {position} was lost"
    lines = check_logs(capsys)
    poison = [line for line in lines if line.get("message") == "poison record"]
    assert all(not line["reason"].startswith(UNREADABLE_RECORD) for line in poison)
    if poison:
        [error] = [line for line in lines if line.get("cause", "").startswith("DLQ_URL is not set")]
        assert error["records"] == len(poison)


@boundary_settings(max_examples=60)
@given(event=st.one_of(any_json, st.builds(lambda records: {"Records": records}, any_json)))
def test_any_json_as_the_event_gets_a_response(handler, momento_server, lambda_context, capsys, event):
    reported = run_event(handler, momento_server, lambda_context, capsys, event)

    records = event.get("Records") if isinstance(event, dict) else None
    assert len(reported) <= (len(records) if isinstance(records, list) else 0)
    check_logs(capsys)
