"""Decoding received topic messages: either publish mode gives change messages in order; anything else is refused.

The integration tests publish through the real SDK to the local Momento server and read through a real
subscription, both with the project's own subscriber and with the README's example loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from local_pipeline.momento_server import LocalMomentoServer
from local_pipeline.subscriber import TopicSubscriber
from stream_processor.change_feed import NotAChangeMessage, decode_topic_message
from stream_processor.config import load_settings
from stream_processor.planner import ChangeRules, plan_batch, read_batch
from stream_processor.topic_packing import change_message_limit, pack_change_messages
from tests.conftest import TEST_CACHE_NAME, TEST_TOPIC_NAME
from tests.stream_processor.records import CREATED, insert, modify, remove

README = Path(__file__).resolve().parents[2] / "README.md"


def change_messages(packed: bool, count: int = 40, first: int = 1) -> list[tuple[str, bytes]]:
    """Real change messages from the planner, in stream order: (cache key, message), a few keys changing often.

    Sequence numbers (and event ids) count from ``first``; change 13 is too large and is sent truncated.
    """
    settings = load_settings(
        {
            "CACHE_NAME": TEST_CACHE_NAME,
            "TOPIC_NAME": TEST_TOPIC_NAME,
            "MOMENTO_LOCAL_ENDPOINT": "127.0.0.1:1",
            "TOPIC_MAX_BYTES": "1024",
            "TOPIC_PACKING": "on" if packed else "off",
        }
    )
    rules = ChangeRules.from_settings(settings)
    limit = change_message_limit(settings.topic_max_bytes, settings.topic_packing)
    rules = dataclasses.replace(rules, messages=dataclasses.replace(rules.messages, max_bytes=limit))
    records = []
    for number in range(count):
        city = ["Lima", "Cairo", "Oslo", "Perth"][number % 4]
        make = [insert, modify, remove][number % 3]
        note = "x" * 3000 if number == 13 else "ü" * number
        records.append(make(city, seq=first + number, MaxTemp=number, Note=note))
    plan = plan_batch(read_batch(records, rules), rules, float(CREATED))
    by_sequence = {
        change.sequence_number: (key_plan.cache_key, change.message)
        for key_plan in plan.key_plans
        for change in key_plan.changes
    }
    return [by_sequence[str(first + number)] for number in range(count)]  # type: ignore[misc]


# --- decoding ----------------------------------------------------------------------------------------------------

SINGLE = '{"eventName":"MODIFY","eventID":"e1","sequenceNumber":"1","table":"weather","key":"Lima","expired":false}'
OTHER = '{"eventName":"REMOVE","eventID":"e2","sequenceNumber":"2","table":"weather","key":"Oslo","expired":true}'


def test_a_single_change_message_is_one_change():
    assert decode_topic_message(SINGLE) == [json.loads(SINGLE)]


def test_a_packed_message_is_its_changes_in_order():
    assert decode_topic_message(f"[{SINGLE},{OTHER}]") == [json.loads(SINGLE), json.loads(OTHER)]


def test_bytes_are_read_as_utf_8():
    text = SINGLE.replace('"Lima"', '"Zürich"')
    assert decode_topic_message(text.encode()) == decode_topic_message(text) == [json.loads(text)]


def test_numbers_keep_their_exact_digits():
    text = SINGLE.replace('"expired":false', '"newImage":{"big":12345678901234567890.123456789,"n":7},"expired":false')
    (change,) = decode_topic_message(text)
    assert change["newImage"] == {"big": Decimal("12345678901234567890.123456789"), "n": 7}
    assert decode_topic_message(text, parse_float=float)[0]["newImage"]["big"] == pytest.approx(1.2345678901234567e19)


def test_a_redrive_resync_without_event_id_is_a_change():
    resync = '{"eventName":"RESYNC","table":"weather","key":"Lima","keys":{"Location":"Lima"},"redriven":true}'
    assert decode_topic_message(resync)[0]["eventName"] == "RESYNC"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("hello", r"not UTF-8 JSON"),
        (b"\xff\xfe", r"not UTF-8 JSON"),
        ("", r"not UTF-8 JSON"),
        (f"{SINGLE}\n{OTHER}", r"not UTF-8 JSON"),
        ("42", r"got a JSON int"),
        ('"text"', r"got a JSON str"),
        ("null", r"got a JSON NoneType"),
        ("[]", r"got an empty array"),
        ('{"hello":"world"}', r"no text eventName, table, key"),
        ('{"eventName":"INSERT","table":"t","key":7}', r"no text key"),
        (f"[{SINGLE},42]", r"element 1 of the packed array\): expected a JSON object, got int"),
        (f'[{SINGLE},{{"eventName":"INSERT"}}]', r"element 1 of the packed array\): no text table, key"),
        (f"[[{SINGLE}]]", r"element 0 of the packed array\): expected a JSON object, got list"),
    ],
)
def test_anything_else_is_refused_saying_why(message: str | bytes, reason: str):
    with pytest.raises(NotAChangeMessage, match=f"^not a change message.*{reason}"):
        decode_topic_message(message)


def test_a_value_that_is_not_text_is_refused():
    with pytest.raises(NotAChangeMessage, match="expected text or bytes, got int"):
        decode_topic_message(42)  # type: ignore[arg-type]


# --- through the real SDK and the local server -------------------------------------------------------------------


async def publish_all(server: LocalMomentoServer, texts: list[str]) -> None:
    from momento import TopicClientAsync, TopicConfigurations
    from momento.responses import TopicPublish

    async with TopicClientAsync(TopicConfigurations.Default.latest(), server.credential_provider()) as topics:
        for text in texts:  # one after another: the order the subscriber must see
            response = await topics.publish(TEST_CACHE_NAME, TEST_TOPIC_NAME, text)
            assert isinstance(response, TopicPublish.Success), response


def test_packed_and_single_topic_messages_decode_to_every_change_in_order(momento_server: LocalMomentoServer):
    packed = change_messages(packed=True)
    single = change_messages(packed=False, first=101)
    packs = pack_change_messages(packed, 1024)
    assert 1 < len(packs) < len(packed), "the messages should need a few packs, not one each"
    texts = [pack.text for pack in packs] + [message.decode() for _, message in single]

    with TopicSubscriber(momento_server.credential_provider(), TEST_CACHE_NAME, TEST_TOPIC_NAME) as subscriber:
        asyncio.run(publish_all(momento_server, texts))
        assert subscriber.wait_for(len(texts), timeout_seconds=30)
        received = subscriber.messages

    changes = [change for message in received for change in decode_topic_message(message)]
    expected = [json.loads(message, parse_float=Decimal) for _, message in packed + single]
    assert changes == expected
    assert [change["sequenceNumber"] for change in changes] == [str(n) for n in [*range(1, 41), *range(101, 141)]]
    assert [change.get("truncated") for change in changes].count(True) == 2
    assert all(len(text.encode()) <= 1024 for text in received)


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("### Packed topic messages", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README's packed-topic section has no Python example"
    return match.group(1)


def test_the_readme_subscriber_loop_receives_both_modes_once_per_event_id(momento_server: LocalMomentoServer):
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    follow_changes = namespace["follow_changes"]
    single = [message.decode() for _, message in change_messages(packed=False, count=6)]
    packs = [pack.text for pack in pack_change_messages(change_messages(packed=True, count=12, first=101), 1024)]
    received: list[dict[str, Any]] = []

    async def scenario() -> None:
        from momento import TopicClientAsync, TopicConfigurations

        follower = asyncio.create_task(
            follow_changes(momento_server.credential_provider(), TEST_CACHE_NAME, TEST_TOPIC_NAME, received.append)
        )
        async with TopicClientAsync(TopicConfigurations.Default.latest(), momento_server.credential_provider()) as pub:
            probe = 0
            while not received:  # the subscription is open once a probe comes back
                probe += 1
                probe_text = SINGLE.replace('"e1"', f'"probe-{probe}"')
                await pub.publish(TEST_CACHE_NAME, TEST_TOPIC_NAME, probe_text)
                await asyncio.sleep(0.2)
                assert probe < 100, "the README example never received a message"
            received.clear()
            for text in [*single, *packs, single[0], packs[0]]:  # the last two again: at-least-once
                await pub.publish(TEST_CACHE_NAME, TEST_TOPIC_NAME, text)
            for _ in range(300):
                if len(received) >= 18:
                    break
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a duplicate delivered late would land here
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower

    asyncio.run(scenario())

    sequence_numbers = [change["sequenceNumber"] for change in received if not change["eventID"].startswith("probe")]
    assert sequence_numbers == [str(n) for n in [*range(1, 7), *range(101, 113)]]
    assert len({change["eventID"] for change in received}) == len(received)
