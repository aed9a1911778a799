"""Retry timing: the invocation's time budget and full-jitter exponential backoff (point 7, clarification 1).

No clocks are read: remaining time comes from a fake ``get_remaining_time_in_millis`` and randomness from seeded
generators, so every assertion is exact or a bound over a fixed sample.
"""

from __future__ import annotations

import random
import statistics

import pytest

from stream_processor.retries import Backoff, Deadline


class FakeContext:
    """A Lambda context whose remaining time is whatever the test says."""

    def __init__(self, *remaining_ms: int) -> None:
        self.values = list(remaining_ms)
        self.calls = 0

    def get_remaining_time_in_millis(self) -> int:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return value


# --- Deadline ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining_ms", "delay", "worst_call", "affordable"),
    [
        (10_000, 1.0, 1.1, True),  # 10 - 1 - 1.1 - 0.5 = 7.4 s left
        (2_601, 1.0, 1.1, True),  # 1 ms to spare
        (2_599, 1.0, 1.1, False),  # 1 ms short
        (1_700, 0.0, 1.1, True),
        (1_600, 0.0, 1.1, False),  # exactly the call and the reply margin: no room left
        (500, 0.0, 0.0, False),
        (0, 0.0, 0.0, False),
        (-200, 0.0, 0.0, False),  # Lambda may report a negative remaining time at the very end
    ],
)
def test_can_afford_needs_the_delay_a_worst_case_call_and_the_reply_margin(
    remaining_ms: int, delay: float, worst_call: float, affordable: bool
) -> None:
    deadline = Deadline(FakeContext(remaining_ms).get_remaining_time_in_millis)
    assert deadline.reply_margin_seconds == 0.5
    assert deadline.can_afford(delay, worst_call) is affordable


def test_the_reply_margin_is_configurable() -> None:
    deadline = Deadline(lambda: 3_000, reply_margin_seconds=2.0)
    assert deadline.can_afford(0.0, 0.9) is True
    assert deadline.can_afford(0.0, 1.1) is False


def test_remaining_time_is_read_afresh_on_every_question() -> None:
    context = FakeContext(5_000, 4_000, 900)
    deadline = Deadline.from_context(context)
    assert deadline.remaining_seconds() == 5.0
    assert deadline.can_afford(0.5, 1.0) is True  # 4.0 - 0.5 - 1.0 - 0.5 = 2.0 s to spare
    assert deadline.can_afford(0.5, 1.0) is False  # 0.9 - 0.5 - 1.0 - 0.5 < 0
    assert context.calls == 3


class NotAContext:
    get_remaining_time_in_millis = 12_000  # not callable


@pytest.mark.parametrize("context", [None, object(), NotAContext()])
def test_without_a_lambda_context_the_budget_is_the_fallback(context: object) -> None:
    deadline = Deadline.from_context(context, fallback_seconds=30.0)
    assert 0.0 < deadline.remaining_seconds() <= 30.0
    assert deadline.can_afford(1.0, 1.0) is True
    assert deadline.can_afford(30.0, 0.0) is False


# --- Backoff -----------------------------------------------------------------------------------------------------

SAMPLES = 4_000


def delays(backoff: Backoff, attempt: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [backoff.delay(attempt, rng) for _ in range(SAMPLES)]


@pytest.mark.parametrize("attempt", range(8))
def test_each_delay_is_within_zero_and_the_exponential_bound(attempt: int) -> None:
    backoff = Backoff(base_seconds=0.05, cap_seconds=1.0)
    bound = min(1.0, 0.05 * 2**attempt)
    sample = delays(backoff, attempt)
    assert all(0.0 <= delay <= bound for delay in sample)
    # full jitter: uniform over [0, bound], so the sample spans it and averages about half of it
    assert max(sample) > 0.95 * bound
    assert min(sample) < 0.05 * bound
    assert statistics.fmean(sample) == pytest.approx(bound / 2, rel=0.05)


def test_the_bound_doubles_until_the_cap() -> None:
    backoff = Backoff(base_seconds=0.05, cap_seconds=1.0)
    means = [statistics.fmean(delays(backoff, attempt)) for attempt in range(8)]
    for attempt in range(4):  # 0.05, 0.1, 0.2, 0.4, 0.8: below the cap
        assert means[attempt + 1] / means[attempt] == pytest.approx(2.0, rel=0.1)
    assert means[6] == pytest.approx(means[7], rel=0.05)  # 3.2 and 6.4 are both capped at 1.0
    assert means[7] == pytest.approx(0.5, rel=0.05)


def test_huge_attempt_numbers_stay_capped() -> None:
    backoff = Backoff(base_seconds=0.05, cap_seconds=2.0)
    rng = random.Random(3)
    assert all(0.0 <= backoff.delay(attempt, rng) <= 2.0 for attempt in (50, 1_000, 10**6))


def test_jitter_spreads_concurrent_retries() -> None:
    backoff = Backoff()
    rng = random.Random(11)
    assert len({round(backoff.delay(3, rng), 9) for _ in range(50)}) == 50


def test_the_same_seed_gives_the_same_delays() -> None:
    assert delays(Backoff(), 4, seed=99)[:20] == delays(Backoff(), 4, seed=99)[:20]
