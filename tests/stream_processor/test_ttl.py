"""Cache TTLs: default, cap, the item's DynamoDB TTL attribute, expired items, DynamoDB's five-year rule (point 4)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processor.ttl import EXPIRED, TtlPolicy

NOW = 1_795_000_000.0
DAY = 86_400
YEAR = 365 * DAY
POLICY = TtlPolicy(default_seconds=3600, max_seconds=86400, attribute="ExpiresAt")


def item(expires_at: Any = None) -> dict[str, Any]:
    image: dict[str, Any] = {"Location": {"S": "Oslo"}, "Temperature": {"N": "4"}}
    if expires_at is not None:
        image["ExpiresAt"] = expires_at if isinstance(expires_at, dict) else {"N": str(expires_at)}
    return image


def test_the_default_ttl_applies_without_a_ttl_attribute_setting() -> None:
    policy = TtlPolicy(default_seconds=3600, max_seconds=86400)
    assert policy.ttl_milliseconds(item(NOW + 60), NOW) == 3_600_000


def test_the_default_ttl_applies_when_the_item_lacks_the_attribute() -> None:
    assert POLICY.ttl_milliseconds(item(), NOW) == 3_600_000


def test_the_default_ttl_is_never_above_the_maximum() -> None:
    assert TtlPolicy(default_seconds=7200, max_seconds=3600).ttl_milliseconds(item(), NOW) == 3_600_000


@pytest.mark.parametrize(
    ("seconds_left", "ttl_ms"), [(120, 120_000), (1, 1_000), (86_400, 86_400_000), (7_777, 7_777_000)]
)
def test_a_future_ttl_attribute_gives_the_time_left(seconds_left: int, ttl_ms: int) -> None:
    assert POLICY.ttl_milliseconds(item(int(NOW) + seconds_left), NOW) == ttl_ms


@pytest.mark.parametrize("seconds_left", [86_401, 30 * DAY, 10 * YEAR])
def test_a_far_ttl_attribute_is_capped_by_the_maximum(seconds_left: int) -> None:
    assert POLICY.ttl_milliseconds(item(int(NOW) + seconds_left), NOW) == 86_400_000


def test_a_ttl_written_in_milliseconds_by_mistake_is_far_future_and_capped() -> None:
    assert POLICY.ttl_milliseconds(item(int(NOW * 1000)), NOW) == 86_400_000


def test_a_cap_below_the_time_left_wins() -> None:
    policy = TtlPolicy(default_seconds=60, max_seconds=300, attribute="ExpiresAt")
    assert policy.ttl_milliseconds(item(int(NOW) + 3600), NOW) == 300_000
    assert policy.ttl_milliseconds(item(int(NOW) + 200), NOW) == 200_000


def test_ttls_are_whole_milliseconds() -> None:
    ttl = POLICY.ttl_milliseconds(item("1795000001.2345"), NOW)
    assert isinstance(ttl, int)
    assert 1234 <= ttl <= 1235
    ttl = POLICY.ttl_milliseconds(item(int(NOW) + 10), NOW + 0.0004)
    assert isinstance(ttl, int)
    assert 9999 <= ttl <= 10_000


@pytest.mark.parametrize("seconds_ago", [1, 60, DAY, 30 * DAY, 4 * YEAR, 5 * YEAR - DAY])
def test_a_past_ttl_attribute_means_expired(seconds_ago: int) -> None:
    assert POLICY.ttl_milliseconds(item(int(NOW) - seconds_ago), NOW) is EXPIRED
    assert EXPIRED is None


@pytest.mark.parametrize("seconds_ago", [5 * YEAR + 2 * DAY, 6 * YEAR, 40 * YEAR])
def test_a_ttl_more_than_five_years_past_is_ignored_as_dynamodb_does(seconds_ago: int) -> None:
    assert POLICY.ttl_milliseconds(item(int(NOW) - seconds_ago), NOW) == 3_600_000


@pytest.mark.parametrize(
    "value",
    [
        {"S": "1795000600"},
        {"BOOL": True},
        {"NULL": True},
        {"NS": ["1795000600"]},
        {"L": [{"N": "1795000600"}]},
        {"N": "NaN"},
        {"N": "Infinity"},
        {"N": "-Infinity"},
        {"N": "soon"},
        {"N": None},
        "1795000600",
    ],
)
def test_a_ttl_attribute_that_is_not_a_number_is_ignored(value: Any) -> None:
    assert POLICY.ttl_milliseconds({"Location": {"S": "Oslo"}, "ExpiresAt": value}, NOW) == 3_600_000


@settings(max_examples=200, deadline=None)
@given(
    offset=st.floats(min_value=-4 * YEAR, max_value=4 * YEAR, allow_nan=False),
    default=st.integers(1, 86_400),
    cap=st.integers(1, 86_400),
)
def test_a_ttl_is_expired_or_a_positive_whole_millisecond_count_within_the_cap(
    offset: float, default: int, cap: int
) -> None:
    policy = TtlPolicy(default_seconds=default, max_seconds=cap, attribute="ExpiresAt")
    ttl = policy.ttl_milliseconds(item(repr(NOW + offset)), NOW)
    if offset <= 0:
        assert ttl is EXPIRED
    elif offset >= 0.001:
        assert isinstance(ttl, int)
        assert 0 < ttl <= cap * 1000
        assert abs(ttl - min(cap * 1000, offset * 1000)) <= 1
    else:  # under a millisecond left: too little to set (a zero TTL is invalid), so gone
        assert ttl is EXPIRED or ttl == 1
