"""Packed topic messages: order, size limit, coverage, framing, publish dependencies and failure reporting."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processor.changes import parse_change
from stream_processor.messages import MessageFormat
from stream_processor.topic_packing import (
    PACK_FRAMING_BYTES,
    TopicPack,
    TopicPacker,
    change_message_limit,
    earliest_unpublished,
    pack_change_messages,
    unpublished_packs,
)
from tests.stream_processor.records import insert

Change = tuple[str, bytes]


def message(key: str, number: int, padding: str) -> bytes:
    return json.dumps({"key": key, "n": number, "pad": padding}, ensure_ascii=False, separators=(",", ":")).encode()


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[Change], int]:
    """Change messages of a few keys, each key's in stream order (``n`` counts up), and a limit they all fit."""
    keys = draw(st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=5, unique=True))
    paddings = st.text(max_size=60) | st.just("é" * 30)  # multi-byte characters: the limit counts UTF-8 bytes
    changes = [
        message(key, number, padding)
        for number, (key, padding) in enumerate(draw(st.lists(st.tuples(st.sampled_from(keys), paddings), max_size=60)))
    ]
    keyed = [(json.loads(body)["key"], body) for body in changes]
    longest = max((len(body) for _, body in keyed), default=1)
    max_bytes = draw(st.integers(longest + PACK_FRAMING_BYTES, longest * 6 + PACK_FRAMING_BYTES))
    return keyed, max_bytes


def flatten(packs: list[TopicPack]) -> list[int]:
    return [change for pack in packs for change in pack.changes]


# --- the format --------------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(batches())
def test_packs_keep_the_order_carry_every_change_once_and_stay_within_the_limit(batch: tuple[list[Change], int]):
    changes, max_bytes = batch
    packs = pack_change_messages(changes, max_bytes)

    assert flatten(packs) == list(range(len(changes)))  # order kept, every change exactly once
    assert all(pack.changes for pack in packs)
    assert all(len(pack.payload) <= max_bytes for pack in packs)
    for pack in packs:
        assert pack.keys == tuple(changes[position][0] for position in pack.changes)


@settings(max_examples=300)
@given(batches())
def test_a_pack_is_a_json_array_of_the_change_messages_it_carries(batch: tuple[list[Change], int]):
    changes, max_bytes = batch
    for pack in pack_change_messages(changes, max_bytes):
        assert json.loads(pack.text) == [json.loads(changes[position][1]) for position in pack.changes]
        assert pack.payload == b"[" + b",".join(changes[position][1] for position in pack.changes) + b"]"


@settings(max_examples=200)
@given(batches())
def test_a_pack_closes_only_when_the_next_message_does_not_fit(batch: tuple[list[Change], int]):
    changes, max_bytes = batch
    packs = pack_change_messages(changes, max_bytes)
    for pack, following in itertools.pairwise(packs):
        next_message = changes[following.changes[0]][1]
        assert len(pack.payload) + 1 + len(next_message) > max_bytes


def test_typical_change_messages_pack_a_dozen_to_a_4_kib_message():
    changes = [(f"k{n:03}", message(f"k{n:03}", 1000 + n, "x" * 268)) for n in range(130)]
    assert {len(body) for _, body in changes} == {300}

    packs = pack_change_messages(changes, 4096)

    assert len(packs) == 10
    assert [len(pack.changes) for pack in packs] == [13] * 10


def test_no_change_no_pack():
    assert pack_change_messages([], 4096) == []
    assert TopicPacker(4096).flush() is None


# --- the size rules ----------------------------------------------------------------------------------------------


def test_a_lone_message_of_the_packed_limit_fits_exactly():
    limit = change_message_limit(300, packed=True)
    body = message("k", 0, "x" * 300)[: limit - 2] + b'"}'  # any bytes: the packer does not parse them
    assert len(body) == limit == 298

    (pack,) = pack_change_messages([("k", body)], 300)

    assert len(pack.payload) == 300


def test_a_message_longer_than_the_packed_limit_is_refused():
    with pytest.raises(ValueError, match=r"299 bytes cannot fit a topic message of 300 bytes.*298 bytes"):
        pack_change_messages([("k", b"x" * 299)], 300)


def test_the_default_mode_keeps_the_whole_limit():
    assert change_message_limit(4096, packed=False) == 4096
    assert change_message_limit(4096, packed=True) == 4094


@pytest.mark.parametrize("max_bytes", [0, 1, 2])
def test_a_limit_too_small_for_any_message_is_refused(max_bytes: int):
    with pytest.raises(ValueError, match="cannot hold a change message"):
        TopicPacker(max_bytes)


def test_an_oversize_change_is_truncated_to_fit_its_own_pack():
    """MessageFormat built for the packed limit: the truncated message still fits a topic message alone."""
    limit = change_message_limit(512, packed=True)
    change = parse_change(insert("Seattle", seq=7, Notes="x" * 2000))
    body = MessageFormat(max_bytes=limit).change_message(change, "Seattle")

    (pack,) = pack_change_messages([("Seattle", body)], 512)

    (decoded,) = json.loads(pack.text)
    assert decoded["truncated"] is True
    assert "newImage" not in decoded
    assert len(pack.payload) <= 512


# --- the incremental packer --------------------------------------------------------------------------------------


@settings(max_examples=100)
@given(batches())
def test_the_incremental_packer_gives_the_same_packs(batch: tuple[list[Change], int]):
    changes, max_bytes = batch
    packer = TopicPacker(max_bytes)
    packs = [pack for key, body in changes if (pack := packer.add(key, body)) is not None]
    last = packer.flush()
    packs += [last] if last else []

    assert packs == pack_change_messages(changes, max_bytes)
    assert packer.flush() is None


# --- publishing packs concurrently -------------------------------------------------------------------------------


@settings(max_examples=200)
@given(batches())
def test_each_pack_follows_exactly_the_previous_pack_of_each_of_its_keys(batch: tuple[list[Change], int]):
    changes, max_bytes = batch
    packs = pack_change_messages(changes, max_bytes)
    last_pack_of: dict[str, int] = {}
    for position, pack in enumerate(packs):
        expected = {last_pack_of[key] for key in pack.keys if key in last_pack_of}
        assert set(pack.follows) == expected
        assert all(earlier < position for earlier in pack.follows)
        last_pack_of.update(dict.fromkeys(pack.keys, position))


def publish_order(packs: list[TopicPack], rng: random.Random) -> list[int]:
    """A random order in which a concurrent publisher may complete the packs: any pack whose ``follows`` are done."""
    done: list[int] = []
    waiting = set(range(len(packs)))
    while waiting:
        ready = sorted(position for position in waiting if set(packs[position].follows) <= set(done))
        chosen = rng.choice(ready)
        waiting.remove(chosen)
        done.append(chosen)
    return done


@settings(max_examples=300)
@given(batches(), st.randoms(use_true_random=False))
def test_any_publish_order_that_respects_follows_keeps_each_keys_stream_order(
    batch: tuple[list[Change], int], rng: random.Random
):
    changes, max_bytes = batch
    packs = pack_change_messages(changes, max_bytes)

    received = [change for position in publish_order(packs, rng) for change in json.loads(packs[position].text)]

    assert sorted(received, key=lambda change: change["n"]) == [json.loads(body) for _, body in changes]
    for key in {key for key, _ in changes}:
        numbers = [change["n"] for change in received if change["key"] == key]
        assert numbers == sorted(numbers)


def test_packs_of_distinct_keys_follow_nothing():
    changes = [(f"k{n}", message(f"k{n}", n, "x" * 100)) for n in range(100)]
    packs = pack_change_messages(changes, 1024)
    assert len(packs) > 10
    assert all(pack.follows == () for pack in packs)


def test_a_hot_key_chains_its_packs():
    changes = [("hot" if n % 2 else f"k{n}", message("k", n, "x" * 100)) for n in range(100)]
    packs = pack_change_messages(changes, 1024)
    assert [pack.follows for pack in packs] == [(), *[(position,) for position in range(len(packs) - 1)]]


# --- failures ----------------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(batches(), st.data())
def test_after_failed_packs_each_keys_published_changes_are_a_prefix_up_to_its_earliest_unpublished(
    batch: tuple[list[Change], int], data: st.DataObject
):
    changes, max_bytes = batch
    packs = pack_change_messages(changes, max_bytes)
    failed = data.draw(st.sets(st.integers(0, max(0, len(packs) - 1)), max_size=len(packs)))

    skipped = unpublished_packs(packs, failed)
    earliest = earliest_unpublished(packs, failed)

    assert set(failed) <= skipped
    for position, pack in enumerate(packs):
        # Published exactly when it did not fail and every pack it follows was published.
        assert (position in skipped) == (position in failed or any(other in skipped for other in pack.follows))
    published = {change for position, pack in enumerate(packs) if position not in skipped for change in pack.changes}
    for key in {key for key, _ in changes}:
        of_key = [position for position, (other, _) in enumerate(changes) if other == key]
        cut = earliest.get(key)
        assert [position for position in of_key if position in published] == [
            position for position in of_key if cut is None or position < cut
        ]
        assert cut is None or cut in of_key


def test_a_failed_pack_stops_the_packs_that_share_a_key_and_theirs_in_turn():
    changes: list[Change] = [
        ("a", message("a", 0, "x" * 40)),
        ("b", message("b", 1, "x" * 40)),
        ("b", message("b", 2, "x" * 40)),
        ("c", message("c", 3, "x" * 40)),
        ("c", message("c", 4, "x" * 40)),
        ("d", message("d", 5, "x" * 40)),
        ("e", message("e", 6, "x" * 40)),
        ("e", message("e", 7, "x" * 40)),
    ]
    packs = pack_change_messages(changes, 2 * len(changes[0][1]) + 3)  # two messages per pack
    assert [pack.keys for pack in packs] == [("a", "b"), ("b", "c"), ("c", "d"), ("e", "e")]

    assert unpublished_packs(packs, {0}) == {0, 1, 2}
    assert earliest_unpublished(packs, {0}) == {"a": 0, "b": 1, "c": 3, "d": 5}
    assert earliest_unpublished(packs, {1}) == {"b": 2, "c": 3, "d": 5}
    assert earliest_unpublished(packs, {3}) == {"e": 6}
    assert earliest_unpublished(packs, set()) == {}
