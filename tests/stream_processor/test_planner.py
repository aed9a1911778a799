"""The batch planner: per-key supersession and order, poison and rejected records, TTL deletes, table reads.

Every expectation is stated from the issue and its clarifications: only the last cache write of a key is kept, every
change of the key is published in stream order, a poison last change deletes the key and is not published.
"""

from __future__ import annotations

import copy
import json
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processor.config import load_settings
from stream_processor.planner import (
    ChangeRules,
    ItemRead,
    KeyPlan,
    Plan,
    SetItem,
    items_to_read,
    plan_batch,
    read_batch,
)
from tests.stream_processor.records import CREATED, image, insert, keys_only, modify, record, remove, ttl_remove

NOW = float(CREATED)
BASE_ENV = {"CACHE_NAME": "weather-cache", "TOPIC_NAME": "weather-changes", "MOMENTO_API_KEY": "test-key"}


def rules_for(**env: str) -> ChangeRules:
    return ChangeRules.from_settings(load_settings({**BASE_ENV, **env}))


RULES = rules_for()


def plan_of(
    records: list[Any],
    rules: ChangeRules = RULES,
    current_items: dict[str, Any] | None = None,
    now: float = NOW,
) -> Plan:
    return plan_batch(read_batch(records, rules), rules, now, current_items)


def by_key(plan: Plan) -> dict[str, KeyPlan]:
    plans = {key_plan.cache_key: key_plan for key_plan in plan.key_plans}
    assert len(plans) == len(plan.key_plans), "a cache key has two plans"
    return plans


def decode(message: bytes | None) -> dict[str, Any]:
    assert message is not None
    return json.loads(message.decode("utf-8"), parse_float=Decimal)


def value_of(write: SetItem | None) -> dict[str, Any]:
    assert write is not None, "expected a cache set, got a delete"
    return json.loads(write.value.decode("utf-8"), parse_float=Decimal)


def published(key_plan: KeyPlan) -> list[str]:
    """Sequence numbers of the key's change messages, in the order they will be published."""
    return [decode(change.message)["sequenceNumber"] for change in key_plan.changes if change.message is not None]


def poison_record(location: str, seq: int) -> dict[str, Any]:
    """A record with readable keys that can never succeed (unknown eventName)."""
    raw = insert(location, seq=seq, Temperature="0")
    raw["eventName"] = "UPSERT"
    return raw


# --- one change --------------------------------------------------------------------------------------------------


def test_an_insert_becomes_a_set_of_its_new_image_and_one_message() -> None:
    raw = insert("Oslo", seq=1, Temperature="4.5", Conditions="snow")
    plan = plan_of([raw])
    (oslo,) = plan.key_plans
    assert oslo.cache_key == "Oslo"
    assert oslo.write == SetItem(b'{"Location":"Oslo","Temperature":4.5,"Conditions":"snow"}', 3_600_000)
    assert [change.sequence_number for change in oslo.changes] == ["1"]
    assert oslo.changes[0].record is raw
    assert oslo.changes[0].poison_reason is None
    assert decode(oslo.changes[0].message)["newImage"] == value_of(oslo.write)
    assert oslo.writer == oslo.changes[-1]
    assert oslo.earliest_sequence_number == "1"
    assert (plan.poison, plan.rejected, plan.records, plan.superseded_writes) == ((), (), 1, 0)


def test_a_remove_becomes_a_delete_and_one_message() -> None:
    (oslo,) = plan_of([remove("Oslo", seq=2, Temperature="4")]).key_plans
    assert oslo.write is None
    assert published(oslo) == ["2"]
    assert decode(oslo.changes[0].message)["eventName"] == "REMOVE"


def test_the_cache_value_is_compact_utf8_json_with_exact_numbers() -> None:
    raw = insert("Zürich", seq=3, Reading="12345678901234567890.123456789", Note="☀")
    (plan,) = plan_of([raw]).key_plans
    assert plan.write is not None
    assert plan.write.value == '{"Location":"Zürich","Reading":12345678901234567890.123456789,"Note":"☀"}'.encode()


def test_projection_applies_to_the_cache_value_and_the_messages() -> None:
    rules = rules_for(EXCLUDE_ATTRIBUTES="ApiToken")
    raw = modify("Oslo", seq=4, old={"ApiToken": "s3cr3t-old"}, ApiToken="s3cr3t-new", Temperature="4")
    (plan,) = plan_of([raw], rules).key_plans
    assert value_of(plan.write) == {"Location": "Oslo", "Temperature": 4}
    assert b"s3cr3t" not in plan.changes[0].message
    included = rules_for(INCLUDE_ATTRIBUTES="Temperature")
    (plan,) = plan_of([raw], included).key_plans
    assert value_of(plan.write) == {"Temperature": 4}


def test_key_template_names_the_cache_key_and_the_message_key() -> None:
    (plan,) = plan_of([insert("Oslo", seq=5)], rules_for(KEY_TEMPLATE="{table}:{Location}")).key_plans
    assert plan.cache_key == "weather:Oslo"
    assert decode(plan.changes[0].message)["key"] == "weather:Oslo"


# --- supersession and order --------------------------------------------------------------------------------------


def test_only_the_last_write_of_a_key_is_kept_and_every_change_is_published_in_order() -> None:
    records = [
        insert("Oslo", seq=10, Temperature="1"),
        modify("Oslo", seq=11, old={"Temperature": "1"}, Temperature="2"),
        modify("Oslo", seq=12, old={"Temperature": "2"}, Temperature="3"),
    ]
    plan = plan_of(records)
    (oslo,) = plan.key_plans
    assert value_of(oslo.write) == {"Location": "Oslo", "Temperature": 3}
    assert published(oslo) == ["10", "11", "12"]
    assert [decode(c.message)["eventName"] for c in oslo.changes] == ["INSERT", "MODIFY", "MODIFY"]
    assert oslo.superseded_writes == 2
    assert plan.superseded_writes == 2
    assert oslo.writer.sequence_number == "12"
    assert oslo.earliest_sequence_number == "10"


def test_a_final_remove_deletes_and_an_insert_after_a_remove_sets() -> None:
    removed = by_key(plan_of([insert("Oslo", seq=1), remove("Oslo", seq=2)]))["Oslo"]
    assert removed.write is None
    assert published(removed) == ["1", "2"]
    reinserted = by_key(plan_of([remove("Oslo", seq=1), insert("Oslo", seq=2, Temperature="9")]))["Oslo"]
    assert value_of(reinserted.write) == {"Location": "Oslo", "Temperature": 9}
    assert published(reinserted) == ["1", "2"]


def test_keys_are_planned_independently() -> None:
    records = [
        insert("Oslo", seq=1, Temperature="1"),
        insert("Bergen", seq=2, Temperature="10"),
        modify("Oslo", seq=3, Temperature="2"),
        insert("Tromsø", seq=4, Temperature="-5"),
        remove("Bergen", seq=5),
    ]
    plan = plan_of(records)
    plans = by_key(plan)
    assert set(plans) == {"Oslo", "Bergen", "Tromsø"}
    assert value_of(plans["Oslo"].write)["Temperature"] == 2
    assert plans["Bergen"].write is None
    assert value_of(plans["Tromsø"].write)["Temperature"] == -5
    assert {key: published(p) for key, p in plans.items()} == {
        "Oslo": ["1", "3"],
        "Bergen": ["2", "5"],
        "Tromsø": ["4"],
    }
    assert (plan.records, plan.superseded_writes) == (5, 2)


def test_records_out_of_stream_order_are_put_in_order_comparing_sequence_numbers_as_integers() -> None:
    records = [
        modify("Oslo", seq=100, Temperature="3"),
        insert("Oslo", seq=9, Temperature="1"),
        modify("Oslo", seq=10, Temperature="2"),
    ]
    (oslo,) = plan_of(records).key_plans
    assert published(oslo) == ["9", "10", "100"]
    assert value_of(oslo.write)["Temperature"] == 3


def test_sequence_numbers_of_different_lengths_order_as_integers_not_text() -> None:
    low, high = 10**20 - 1, 10**20  # as text "999..." sorts after "100..."
    (oslo,) = plan_of([insert("Oslo", seq=high, Temperature="2"), insert("Oslo", seq=low, Temperature="1")]).key_plans
    assert published(oslo) == [str(low), str(high)]
    assert value_of(oslo.write)["Temperature"] == 2


# --- poison records ----------------------------------------------------------------------------------------------


def test_a_poison_record_with_a_key_keeps_its_place_and_is_not_published() -> None:
    bad = poison_record("Oslo", seq=2)
    plan = plan_of([insert("Oslo", seq=1, Temperature="1"), bad, modify("Oslo", seq=3, Temperature="3")])
    (oslo,) = plan.key_plans
    assert [change.sequence_number for change in oslo.changes] == ["1", "2", "3"]
    assert oslo.changes[1].message is None
    assert "UPSERT" in oslo.changes[1].poison_reason
    assert published(oslo) == ["1", "3"]
    assert value_of(oslo.write)["Temperature"] == 3
    assert [(p.sequence_number, p.record) for p in plan.poison] == [("2", bad)]
    assert "UPSERT" in plan.poison[0].reason


def test_a_poison_last_change_deletes_the_key_and_is_not_published() -> None:
    bad = poison_record("Oslo", seq=2)
    plan = plan_of([insert("Oslo", seq=1, Temperature="1"), bad])
    (oslo,) = plan.key_plans
    assert oslo.write is None  # the cache must not keep a state the table has moved past
    assert oslo.writer.sequence_number == "2"
    assert oslo.writer.message is None
    assert oslo.writer.poison_reason
    assert published(oslo) == ["1"]
    assert [p.record for p in plan.poison] == [bad]


def test_a_change_whose_image_is_malformed_is_poison_in_its_place() -> None:
    bad = insert("Oslo", seq=2, Temperature="1")
    bad["dynamodb"]["NewImage"]["Temperature"] = {"N": "warm"}
    plan = plan_of([insert("Oslo", seq=1), bad])
    (oslo,) = plan.key_plans
    assert oslo.write is None
    assert published(oslo) == ["1"]
    assert [p.sequence_number for p in plan.poison] == ["2"]
    assert plan.poison[0].record is bad


def test_a_change_whose_message_cannot_fit_the_topic_is_poison() -> None:
    rules = rules_for(TOPIC_MAX_BYTES="256")
    location = "L" * 300  # the key alone exceeds 256 bytes
    plan = plan_of([insert(location, seq=1)], rules)
    (key_plan,) = plan.key_plans
    assert key_plan.cache_key == location
    assert key_plan.write is None
    assert published(key_plan) == []
    assert [p.sequence_number for p in plan.poison] == ["1"]


@pytest.mark.parametrize(
    "bad",
    [
        "not a record",
        {"eventSource": "aws:kinesis", "kinesis": {"data": "eyJ9"}},
        {**insert("Oslo", seq=3), "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue"},
        {**insert("Oslo", seq=3), "dynamodb": {"SequenceNumber": "3", "StreamViewType": "NEW_IMAGE"}},
        {**insert("Oslo", seq=3), "dynamodb": {**insert("Oslo", seq=3)["dynamodb"], "Keys": {"Location": {"BOOL": 1}}}},
    ],
)
def test_a_poison_record_without_a_usable_key_is_dead_lettered_alone(bad: Any) -> None:
    plan = plan_of([insert("Oslo", seq=1), bad, insert("Bergen", seq=5)])
    assert set(by_key(plan)) == {"Oslo", "Bergen"}
    assert all(change.poison_reason is None for p in plan.key_plans for change in p.changes)
    assert [p.record for p in plan.poison] == [bad]
    assert plan.poison[0].reason
    assert plan.records == 3


def test_poison_records_keep_their_sequence_numbers_when_they_have_one() -> None:
    plan = plan_of([poison_record("Oslo", seq=7), "garbage"])
    assert sorted((p.sequence_number or "") for p in plan.poison) == ["", "7"]


# --- systemic: KEY_TEMPLATE names an attribute the records lack ----------------------------------------------------


def test_a_key_template_mismatch_rejects_the_records_instead_of_dead_lettering_them() -> None:
    rules = rules_for(KEY_TEMPLATE="{pk}#{sk}")
    plan = plan_of([insert("Oslo", seq=1), remove("Bergen", seq=2)], rules)
    assert plan.key_plans == ()
    assert plan.poison == ()
    assert [r.sequence_number for r in plan.rejected] == ["1", "2"]
    assert all("pk" in r.cause and "Location" in r.cause for r in plan.rejected)
    assert plan.records == 2


# --- TTL ---------------------------------------------------------------------------------------------------------


def test_an_expired_item_is_deleted_but_its_change_still_published() -> None:
    rules = rules_for(TTL_ATTRIBUTE="ExpiresAt")
    (oslo,) = plan_of([insert("Oslo", seq=1, ExpiresAt=int(NOW) - 60)], rules).key_plans
    assert oslo.write is None
    assert published(oslo) == ["1"]
    assert decode(oslo.changes[0].message)["newImage"]["ExpiresAt"] == int(NOW) - 60


def test_a_future_item_ttl_sets_the_time_left_capped() -> None:
    rules = rules_for(TTL_ATTRIBUTE="ExpiresAt")
    (soon,) = plan_of([insert("Oslo", seq=1, ExpiresAt=int(NOW) + 90)], rules).key_plans
    assert soon.write is not None
    assert soon.write.ttl_ms == 90_000
    (later,) = plan_of([insert("Oslo", seq=1, ExpiresAt=int(NOW) + 10 * 86_400)], rules).key_plans
    assert later.write is not None
    assert later.write.ttl_ms == 86_400_000


def test_only_the_last_change_decides_expiry() -> None:
    rules = rules_for(TTL_ATTRIBUTE="ExpiresAt")
    records = [insert("Oslo", seq=1, ExpiresAt=int(NOW) - 60), modify("Oslo", seq=2, ExpiresAt=int(NOW) + 60)]
    (oslo,) = plan_of(records, rules).key_plans
    assert oslo.write is not None
    assert oslo.write.ttl_ms == 60_000


def test_a_ttl_removal_is_a_delete_published_as_expired() -> None:
    (oslo,) = plan_of([insert("Oslo", seq=1), ttl_remove("Oslo", seq=2)]).key_plans
    assert oslo.write is None
    assert [decode(c.message)["expired"] for c in oslo.changes] == [False, True]


# --- streams without new images: table reads ----------------------------------------------------------------------


def test_keys_whose_last_change_has_no_new_image_are_read_from_the_table() -> None:
    batch = read_batch(
        [
            keys_only("INSERT", "Oslo", seq=1),
            keys_only("INSERT", "Bergen", seq=2),
            keys_only("REMOVE", "Bergen", seq=3),
            keys_only("REMOVE", "Tromsø", seq=4),
            keys_only("INSERT", "Tromsø", seq=5),
            insert("Lund", seq=6),
        ],
        RULES,
    )
    reads = items_to_read(batch)
    assert sorted(reads, key=lambda read: read.cache_key) == [
        ItemRead("Oslo", "weather", {"Location": {"S": "Oslo"}}),
        ItemRead("Tromsø", "weather", {"Location": {"S": "Tromsø"}}),
    ]


def test_table_reads_become_sets_or_deletes() -> None:
    records = [
        keys_only("INSERT", "Oslo", seq=1),
        keys_only("MODIFY", "Bergen", seq=2),
        keys_only("REMOVE", "Lund", seq=3),
    ]
    current = {"Oslo": image("Oslo", Temperature="7", ApiToken="x"), "Bergen": None}
    plans = by_key(plan_of(records, rules_for(EXCLUDE_ATTRIBUTES="ApiToken"), current_items=current))
    assert value_of(plans["Oslo"].write) == {"Location": "Oslo", "Temperature": 7}
    assert plans["Bergen"].write is None  # the item is gone from the table
    assert plans["Lund"].write is None
    assert {key: published(p) for key, p in plans.items()} == {"Oslo": ["1"], "Bergen": ["2"], "Lund": ["3"]}
    assert "newImage" not in decode(plans["Oslo"].changes[0].message)


def test_an_old_image_stream_modify_reads_the_table() -> None:
    raw = record("MODIFY", "Oslo", seq=1, old=image("Oslo", Temperature="1"), view_type="OLD_IMAGE")
    batch = read_batch([raw], RULES)
    assert [read.cache_key for read in items_to_read(batch)] == ["Oslo"]
    (oslo,) = plan_batch(batch, RULES, NOW, {"Oslo": image("Oslo", Temperature="2")}).key_plans
    assert value_of(oslo.write) == {"Location": "Oslo", "Temperature": 2}


def test_a_table_read_item_whose_ttl_passed_is_deleted() -> None:
    rules = rules_for(TTL_ATTRIBUTE="ExpiresAt")
    current = {"Oslo": image("Oslo", ExpiresAt=int(NOW) - 1)}
    (oslo,) = plan_of([keys_only("INSERT", "Oslo", seq=1)], rules, current_items=current).key_plans
    assert oslo.write is None
    assert published(oslo) == ["1"]


def test_no_table_read_is_needed_when_every_last_change_carries_its_image() -> None:
    batch = read_batch([keys_only("INSERT", "Oslo", seq=1), insert("Oslo", seq=2), remove("Bergen", seq=3)], RULES)
    assert items_to_read(batch) == []
    (oslo, bergen) = plan_batch(batch, RULES, NOW).key_plans
    assert oslo.write is not None
    assert bergen.write is None


# --- property: random histories -----------------------------------------------------------------------------------

LOCATIONS = ["Oslo", "Bergen", "Tromsø"]
step = st.tuples(
    st.sampled_from(LOCATIONS),
    st.sampled_from(["put", "put", "delete", "poison"]),
    st.integers(-40, 40),
)


def history(steps: list[tuple[str, str, int]], base_seq: int) -> list[dict[str, Any]]:
    """Stream records for steps against a table: a put is an INSERT or MODIFY, a delete of an absent item is skipped."""
    table: dict[str, dict[str, Any]] = {}
    records = []
    for offset, (location, action, temperature) in enumerate(steps):
        seq = base_seq + offset
        if action == "put":
            new = image(location, Temperature=str(temperature), Secret="hidden")
            if location in table:
                records.append(record("MODIFY", location, seq=seq, new=new, old=table[location]))
            else:
                records.append(record("INSERT", location, seq=seq, new=new))
            table[location] = new
        elif action == "delete" and location in table:
            records.append(record("REMOVE", location, seq=seq, old=table.pop(location)))
        elif action == "poison":
            records.append(poison_record(location, seq))
    return records


@settings(max_examples=120, deadline=None)
@given(
    steps=st.lists(step, min_size=1, max_size=25),
    base_seq=st.sampled_from([1, 10**20, 49668178592157356446279651563212296594952925373052862466]),
    shuffle_seed=st.one_of(st.none(), st.integers(0, 2**32)),
)
def test_every_key_ends_at_its_last_change_and_publishes_its_changes_in_stream_order(
    steps: list[tuple[str, str, int]], base_seq: int, shuffle_seed: int | None
) -> None:
    records = history(steps, base_seq)
    delivered = copy.deepcopy(records)
    if shuffle_seed is not None:  # hand-made batches may come unordered; the plan must not care
        random.Random(shuffle_seed).shuffle(delivered)
    rules = rules_for(EXCLUDE_ATTRIBUTES="Secret")
    plan = plan_of(delivered, rules)

    per_key: dict[str, list[dict[str, Any]]] = {}
    for raw in records:
        per_key.setdefault(raw["dynamodb"]["Keys"]["Location"]["S"], []).append(raw)
    plans = by_key(plan)
    assert set(plans) == set(per_key)
    for location, changes in per_key.items():
        key_plan, last = plans[location], changes[-1]
        # the write: the effect of the last change (a set of its projected new image, or a delete)
        if last["eventName"] in ("REMOVE", "UPSERT"):  # a poison last change deletes the key
            assert key_plan.write is None
        else:
            new_image = last["dynamodb"]["NewImage"]  # Secret is excluded by the configuration
            assert value_of(key_plan.write) == {
                "Location": new_image["Location"]["S"],
                "Temperature": Decimal(new_image["Temperature"]["N"]),
            }
            assert key_plan.write.ttl_ms == 3_600_000
        # the messages: exactly the key's valid changes, in stream order
        valid = [raw for raw in changes if raw["eventName"] != "UPSERT"]
        messages = [decode(change.message) for change in key_plan.changes if change.message is not None]
        assert [(m["sequenceNumber"], m["eventName"], m["eventID"]) for m in messages] == [
            (raw["dynamodb"]["SequenceNumber"], raw["eventName"], raw["eventID"]) for raw in valid
        ]
        assert all(b"hidden" not in (change.message or b"") for change in key_plan.changes)
        assert [change.sequence_number for change in key_plan.changes] == [
            raw["dynamodb"]["SequenceNumber"] for raw in changes
        ]
    assert sorted(p.sequence_number for p in plan.poison) == sorted(
        raw["dynamodb"]["SequenceNumber"] for raw in records if raw["eventName"] == "UPSERT"
    )
    assert plan.superseded_writes == len(records) - len(per_key)
    assert plan.records == len(records)
