"""The handler end to end: real Momento SDK over gRPC to the local server, SQS and DynamoDB through moto."""

from __future__ import annotations

import json
import socket

import grpc
import pytest

from local_pipeline.momento_server import ERR_ITEM_SIZE, ERR_OPERATIONS_RATE, FaultRule
from stream_processor import app
from stream_processor.change_feed import decode_topic_message
from stream_processor.config import ConfigurationError
from tests.stream_processor.records import WEATHER_STREAM_ARN, batch, insert, modify, remove, ttl_remove

CACHE = "test-cache"
TOPIC = "test-topic"


def messages(server) -> list[dict]:
    return [json.loads(m) for m in server.published(CACHE, TOPIC)]


def cached(server) -> dict[str, dict]:
    return {key: json.loads(value) for key, value in server.cache_items(CACHE).items()}


def error_lines(capsys) -> list[dict]:
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("level") == "ERROR"]


def test_inserts_modifies_and_removes_land_in_cache_and_topic(handler, momento_server, lambda_context):
    event = batch(
        insert("Seattle", MaxTemp="14", seq=100),
        insert("Tokyo", MaxTemp="21", seq=101),
        modify("Seattle", MaxTemp="15", seq=102, old={"MaxTemp": "14"}),
        remove("Tokyo", seq=103),
    )

    response = handler(event, lambda_context())

    assert response == {"batchItemFailures": []}
    assert cached(momento_server) == {"Seattle": {"Location": "Seattle", "MaxTemp": 15}}
    published = messages(momento_server)
    assert [(m["eventName"], m["key"], m["sequenceNumber"]) for m in published if m["key"] == "Seattle"] == [
        ("INSERT", "Seattle", "100"),
        ("MODIFY", "Seattle", "102"),
    ]
    assert [(m["eventName"], m["sequenceNumber"]) for m in published if m["key"] == "Tokyo"] == [
        ("INSERT", "101"),
        ("REMOVE", "103"),
    ]
    modify_message = next(m for m in published if m["sequenceNumber"] == "102")
    assert modify_message["oldImage"] == {"Location": "Seattle", "MaxTemp": 14}
    assert modify_message["table"] == "weather"
    assert modify_message["keys"] == {"Location": "Seattle"}


def test_repeated_key_writes_the_cache_once_and_publishes_every_change(handler, momento_server, lambda_context):
    event = batch(*(modify("Oslo", MaxTemp=str(t), seq=200 + t) for t in range(10)))

    assert handler(event, lambda_context()) == {"batchItemFailures": []}

    assert momento_server.calls["Set"] == 1
    assert cached(momento_server)["Oslo"]["MaxTemp"] == 9
    assert [m["newImage"]["MaxTemp"] for m in messages(momento_server)] == list(range(10))


def test_ttl_expiry_remove_is_published_as_expired(handler, momento_server, lambda_context):
    handler(batch(insert("Lima", seq=300)), lambda_context())
    assert "Lima" in cached(momento_server)

    handler(batch(ttl_remove("Lima", seq=301)), lambda_context())

    assert "Lima" not in cached(momento_server)
    assert messages(momento_server)[-1]["expired"] is True
    assert messages(momento_server)[0]["expired"] is False


def test_transient_faults_recover_within_the_invocation(handler, momento_server, lambda_context, capsys):
    momento_server.add_fault(FaultRule(method="Set", key="Paris", code=grpc.StatusCode.UNAVAILABLE, times=6))
    momento_server.add_fault(
        FaultRule(method="Publish", code=grpc.StatusCode.RESOURCE_EXHAUSTED, err=ERR_OPERATIONS_RATE, times=2)
    )
    momento_server.add_fault(FaultRule(method="Delete", code=grpc.StatusCode.DEADLINE_EXCEEDED, times=1))

    response = handler(batch(insert("Paris", seq=400), remove("Rome", seq=401)), lambda_context())

    assert response == {"batchItemFailures": []}
    assert "Paris" in cached(momento_server)
    assert sorted(m["sequenceNumber"] for m in messages(momento_server)) == ["400", "401"]
    summary = next(line for line in _json_lines(capsys) if line.get("message") == "batch processed")
    assert summary["retries"] == 6 + 2 + 1  # every failed attempt is retried here (the SDK's retry strategy is off)


def test_a_key_whose_write_keeps_failing_is_reported_and_not_published(handler, momento_server, lambda_context):
    momento_server.add_fault(FaultRule(method="Set", key="Cairo", code=grpc.StatusCode.UNAVAILABLE))
    event = batch(insert("Cairo", seq=500), insert("Delhi", seq=501), modify("Cairo", seq=502))

    # 1.5 s left: enough for one attempt per call, not for retries (remaining time minus a worst-case call)
    response = handler(event, lambda_context(timeout_seconds=1.5))

    assert response == {"batchItemFailures": [{"itemIdentifier": "500"}]}
    assert [m["key"] for m in messages(momento_server)] == ["Delhi"]
    assert "Delhi" in cached(momento_server)


def test_a_failed_publish_stops_that_keys_later_messages(handler, momento_server, lambda_context):
    momento_server.add_fault(FaultRule(method="Publish", key="Accra", code=grpc.StatusCode.UNAVAILABLE))
    event = batch(insert("Accra", seq=600), modify("Accra", seq=601), insert("Quito", seq=602))

    response = handler(event, lambda_context(timeout_seconds=1.5))

    assert response == {"batchItemFailures": [{"itemIdentifier": "600"}]}
    assert [m["key"] for m in messages(momento_server)] == ["Quito"]
    assert cached(momento_server)["Accra"]["Location"] == "Accra"  # the write landed; only messages are retried


def test_item_too_large_is_dead_lettered_and_the_key_deleted(
    handler, momento_server, lambda_context, dead_letter_queue
):
    momento_server.add_fault(
        FaultRule(method="Set", key="Bern", code=grpc.StatusCode.RESOURCE_EXHAUSTED, err=ERR_ITEM_SIZE)
    )
    handler(batch(insert("Bern", MaxTemp="1", seq=700)), lambda_context())  # the failing set of a new item
    momento_server.clear_faults()
    handler(batch(insert("Bern", MaxTemp="2", seq=701)), lambda_context())
    momento_server.add_fault(
        FaultRule(method="Set", key="Bern", code=grpc.StatusCode.RESOURCE_EXHAUSTED, err=ERR_ITEM_SIZE)
    )

    response = handler(batch(modify("Bern", MaxTemp="3", seq=702), insert("Kyiv", seq=703)), lambda_context())

    assert response == {"batchItemFailures": []}
    assert "Bern" not in cached(momento_server)  # never the older state the table has moved past
    bodies = dead_letter_queue.bodies()
    assert [b["record"]["dynamodb"]["SequenceNumber"] for b in bodies] == ["700", "702"]
    assert all(b["kind"] == "poison-record" and "item_size_limit_exceeded" in b["reason"] for b in bodies)
    assert "703" in [m["sequenceNumber"] for m in messages(momento_server)]
    assert "702" not in [m["sequenceNumber"] for m in messages(momento_server)]


def test_poison_records_go_to_the_dlq_with_payload_and_reason(
    handler, momento_server, lambda_context, dead_letter_queue
):
    bogus = insert("Nairobi", seq=801)
    bogus["eventName"] = "UPSERT"
    keyless = insert("Nowhere", seq=802)
    del keyless["dynamodb"]["Keys"]
    event = batch(insert("Nairobi", seq=800), bogus, keyless, insert("Lagos", seq=803))

    response = handler(event, lambda_context())

    assert response == {"batchItemFailures": []}
    bodies = {b["record"]["dynamodb"]["SequenceNumber"]: b for b in dead_letter_queue.bodies()}
    assert set(bodies) == {"801", "802"}
    assert "unknown eventName 'UPSERT'" in bodies["801"]["reason"]
    assert bodies["801"]["record"] == bogus
    assert "Keys" in bodies["802"]["reason"]
    # The poison change was Nairobi's last: the key is deleted, not left at the state of record 800.
    assert "Nairobi" not in cached(momento_server)
    assert sorted(m["sequenceNumber"] for m in messages(momento_server)) == ["800", "803"]


def test_poison_records_are_reported_when_the_dlq_send_fails(handler_env, momento_server, lambda_context, capsys):
    handler = handler_env(DLQ_URL="https://sqs.us-east-1.amazonaws.com/123456789012/missing-queue")
    bogus = insert("Nairobi", seq=901)
    bogus["eventName"] = "UPSERT"

    response = handler(batch(insert("Lagos", seq=900), bogus), lambda_context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "901"}]}
    assert any("dead-letter queue send failed" in line["message"] for line in error_lines(capsys))


def test_missing_cache_is_systemic_one_error_line_and_every_record_reported(
    handler_env, momento_server, lambda_context, capsys, dead_letter_queue
):
    handler = handler_env(CACHE_NAME="no-such-cache")
    event = batch(*(insert(f"City{i}", seq=1000 + i) for i in range(20)))

    response = handler(event, lambda_context())

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == [str(1000 + i) for i in range(20)]
    errors = error_lines(capsys)
    assert len(errors) == 1
    assert "NOT_FOUND" in errors[0]["cause"] and "CACHE_NAME" in errors[0]["cause"]
    assert dead_letter_queue.bodies() == []  # systemic failures are never poison


def test_key_template_naming_a_non_key_attribute_is_reported_not_dead_lettered(
    handler_env, momento_server, lambda_context, capsys, dead_letter_queue
):
    handler = handler_env(KEY_TEMPLATE="{table}:{MaxTemp}")

    response = handler(batch(insert("Seattle", seq=1100), insert("Tokyo", seq=1101)), lambda_context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "1100"}, {"itemIdentifier": "1101"}]}
    errors = error_lines(capsys)
    assert len(errors) == 1 and "KEY_TEMPLATE" in errors[0]["cause"]
    assert dead_letter_queue.bodies() == []


def test_key_template_and_projection_shape_keys_values_and_messages(handler_env, momento_server, lambda_context):
    handler = handler_env(KEY_TEMPLATE="{table}:{Location}", EXCLUDE_ATTRIBUTES="Secret")

    handler(batch(insert("Seattle", MaxTemp="14", Secret="s3cr3t", seq=1200)), lambda_context())

    assert cached(momento_server) == {"weather:Seattle": {"Location": "Seattle", "MaxTemp": 14}}
    assert "s3cr3t" not in momento_server.published(CACHE, TOPIC)[0].decode()


def test_not_a_stream_event_and_empty_batches_do_not_crash(handler, momento_server, lambda_context, capsys):
    assert handler({"Records": []}, lambda_context()) == {"batchItemFailures": []}
    assert handler({"detail-type": "Scheduled Event"}, lambda_context()) == {"batchItemFailures": []}
    assert handler([1, 2, 3], lambda_context()) == {"batchItemFailures": []}
    errors = error_lines(capsys)
    assert len(errors) == 2 and all("not a DynamoDB stream batch" in e["message"] for e in errors)
    assert momento_server.calls["Set"] == 0


def test_clients_survive_across_invocations_on_one_container(handler, momento_server, lambda_context):
    for round_number in range(3):
        assert handler(batch(insert(f"K{round_number}", seq=1300 + round_number)), lambda_context()) == {
            "batchItemFailures": []
        }
    assert set(cached(momento_server)) == {"K0", "K1", "K2"}


@pytest.mark.filterwarnings("ignore:No application metrics")  # the invocation fails before any metric
def test_configuration_error_names_the_variable(handler_env, lambda_context):
    handler = handler_env(MAX_IN_FLIGHT="zero")

    with pytest.raises(ConfigurationError, match="MAX_IN_FLIGHT must be a positive integer"):
        handler(batch(insert("Seattle", seq=1)), lambda_context())


def test_summary_log_and_metrics_carry_the_counts(handler, momento_server, lambda_context, capsys):
    event = batch(insert("A", seq=1), modify("A", seq=2), remove("B", seq=3))

    handler(event, lambda_context())

    lines = _json_lines(capsys)
    summary = next(line for line in lines if line.get("message") == "batch processed")
    assert {k: summary[k] for k in ("records", "sets", "deletes", "publishes", "superseded_writes", "failures")} == {
        "records": 3,
        "sets": 1,
        "deletes": 1,
        "publishes": 3,
        "superseded_writes": 1,
        "failures": 0,
    }
    assert summary["function_request_id"]  # correlated with the invocation
    emf = next(line for line in lines if "_aws" in line)
    values = {name: sum(v) if isinstance(v, list) else v for name, v in emf.items() if name != "_aws"}
    assert (values["CacheSets"], values["Publishes"], values["SupersededWrites"]) == (1.0, 3.0, 1.0)


def test_event_source_arn_names_the_table(handler_env, momento_server, lambda_context):
    handler = handler_env(KEY_TEMPLATE="{table}/{Location}")
    record = insert("Seattle", seq=5)
    assert record["eventSourceARN"] == WEATHER_STREAM_ARN

    handler(batch(record), lambda_context())

    assert list(cached(momento_server)) == ["weather/Seattle"]


def _json_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_handler_module_reads_no_configuration_at_import():
    # Importing must not need the environment (tests, tools); the processor is built on first use.
    assert callable(app.handler) and callable(app.processor)


# --- any JSON in, a response out; errors that name the thing to fix ---------------------------------------------


def _summary(capsys) -> tuple[dict, list[dict]]:
    lines = _json_lines(capsys)
    return next(line for line in lines if line.get("message") == "batch processed"), lines


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (("eventName",), ["INSERT"], "unknown eventName an array"),
        (("eventName",), {"INSERT": 1}, "unknown eventName an object"),
        (("dynamodb", "StreamViewType"), ["KEYS_ONLY"], "dynamodb.StreamViewType must be text, got an array"),
        (("dynamodb", "NewImage", "MaxTemp"), {"N": True}, "dynamodb.NewImage.MaxTemp.N must be a string"),
        (("dynamodb", "NewImage", "Temps"), {"NS": [False, "2"]}, "dynamodb.NewImage.Temps.NS[0] must be a string"),
        (("dynamodb", "Keys", "Location"), {"N": True}, "dynamodb.Keys.Location.N must be a string"),
        (("dynamodb", "NewImage", "Note"), {"S": "lone \ud800 surrogate"}, "NewImage.Note.S is not valid Unicode"),
        (("eventID",), "id-\ud800", "eventID must be a string of Unicode text"),
        (("eventSourceARN",), "arn:aws:dynamodb:us-east-1:1:table/we\ud800ther/stream/x", "not a DynamoDB stream ARN"),
        # more digits than int() reads: ordered all the same, then too long for a change message
        (("dynamodb", "SequenceNumber"), "9" * 5000, "change message cannot fit"),
        (("dynamodb", "SequenceNumber"), "9" * 60, None),
    ],
)
def test_a_malformed_field_costs_its_record_only(
    handler, momento_server, lambda_context, dead_letter_queue, field, value, reason
):
    broken = insert("Nairobi", MaxTemp="30", seq=2)
    if field[-1] == "StreamViewType":
        del broken["dynamodb"]["NewImage"]
    target = broken
    for name in field[:-1]:
        target = target[name]
    target[field[-1]] = value

    response = handler(batch(insert("Lagos", seq=1), broken, insert("Accra", seq=3)), lambda_context())

    assert response == {"batchItemFailures": []}
    assert {"Lagos", "Accra"} <= set(cached(momento_server))
    bodies = dead_letter_queue.bodies()
    if reason is None:
        assert bodies == [] and "Nairobi" in cached(momento_server)
        return
    [body] = bodies
    assert reason in body["reason"]
    assert body["record"] == broken  # the very record, lone surrogates included


def test_the_dlq_body_is_utf8_json_with_the_record_escaped_where_utf8_cannot_carry_it(
    handler, momento_server, lambda_context, dead_letter_queue
):
    broken = insert("Nairobi", Note="\ud800\ufffe é", seq=2)

    handler(batch(broken), lambda_context())

    raw = dead_letter_queue.sqs.receive_message(QueueUrl=dead_letter_queue.url)["Messages"][0]["Body"]
    raw.encode("utf-8")  # encodable: no lone surrogate left in the text
    assert "\\ud800" in raw and "\\ufffe" in raw and "é" in raw
    assert json.loads(raw)["record"] == broken


def test_any_json_as_a_record_or_as_the_event_gets_a_response(handler, momento_server, lambda_context):
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    for event in ([deep], {"Records": [deep, 1, None, "x", {"eventSource": deep}]}, {"Records": deep}):
        response = handler(event, lambda_context())
        assert set(response) == {"batchItemFailures"}


def test_poison_without_a_dlq_is_reported_with_the_count_of_records(
    handler_env, momento_server, lambda_context, capsys
):
    handler = handler_env(DLQ_URL="")
    bad = [insert("Nairobi", seq=5), insert("Lima", seq=6)]
    for record in bad:
        record["eventName"] = "UPSERT"

    response = handler(batch(insert("Lagos", seq=4), *bad), lambda_context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "5"}, {"itemIdentifier": "6"}]}
    [error] = error_lines(capsys)
    assert error["cause"].startswith("DLQ_URL is not set") and error["records"] == 2


def test_poison_log_lines_name_the_attribute_and_type_never_the_value(handler, momento_server, lambda_context, capsys):
    broken = insert("Nairobi", seq=2)
    broken["dynamodb"]["NewImage"]["Reading"] = {"N": "leaked-4711"}
    broken["dynamodb"]["OldImage"] = {"Location": {"S": "Nairobi"}, "Secret": {"B": "leaked-4712!"}}

    handler(batch(broken), lambda_context())

    out = capsys.readouterr().out
    assert "dynamodb.NewImage.Reading.N" in out
    assert "leaked-47" not in out


def test_a_missing_cache_error_names_the_cache(handler_env, momento_server, lambda_context, capsys):
    handler = handler_env(CACHE_NAME="no-such-cache")

    handler(batch(insert("Seattle", seq=1)), lambda_context())

    [error] = error_lines(capsys)
    assert 'create the cache "no-such-cache"' in error["cause"]


def test_a_closed_local_endpoint_is_named_refused_and_not_retried(handler_env, lambda_context, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = handler_env(MOMENTO_LOCAL_ENDPOINT=f"127.0.0.1:{port}")

    response = handler(batch(insert("Seattle", seq=1), insert("Tokyo", seq=2)), lambda_context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}, {"itemIdentifier": "2"}]}
    summary, lines = _summary(capsys)
    assert summary["retries"] == 0  # refused on every attempt: systemic, Lambda retries the batch
    [error] = [line for line in lines if line.get("level") == "ERROR"]
    assert f"connection refused by 127.0.0.1:{port}" in error["cause"]
    assert "MOMENTO_LOCAL_ENDPOINT" in error["cause"]


def test_packed_topic_messages_carry_every_change_in_order_and_a_subscriber_reads_them_back(
    handler_env, momento_server, lambda_context, capsys
):
    handler = handler_env(TOPIC_PACKING="on")
    cities = [f"city-{index:02d}" for index in range(40)]
    event = batch(
        *(insert(city, MaxTemp=str(index), seq=1000 + index) for index, city in enumerate(cities)),
        *(modify(city, MaxTemp=str(index + 1), seq=2000 + index) for index, city in enumerate(cities[:10])),
        remove(cities[39], seq=3000),
    )

    assert handler(event, lambda_context()) == {"batchItemFailures": []}

    topic_messages = momento_server.published(CACHE, TOPIC)
    assert all(isinstance(json.loads(message), list) for message in topic_messages)
    assert len(topic_messages) <= 51 / 8
    assert all(len(message) <= 4096 for message in topic_messages)
    changes = [change for message in topic_messages for change in decode_topic_message(message)]
    assert sorted(int(change["sequenceNumber"]) for change in changes) == sorted(
        int(record["dynamodb"]["SequenceNumber"]) for record in event["Records"]
    )
    for city in cities:
        numbers = [int(change["sequenceNumber"]) for change in changes if change["key"] == city]
        assert numbers == sorted(numbers)
    assert len(cached(momento_server)) == 39
    [summary] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "batch processed" in line]
    assert (summary["publishes"], summary["topic_messages"]) == (51, len(topic_messages))
