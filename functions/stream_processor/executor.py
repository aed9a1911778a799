"""Plan execution: every key of a stream batch brought in line through ``KeySync``, keys concurrently.

Per key (``KeySync.apply``): one cache write, retried while the invocation has time, then the key's change messages
one after another, each only after the cache holds that change or a later one. Keys run concurrently on one event
loop, with at most ``max_in_flight`` Momento requests outstanding. Outcomes per the failure rules:

- a key's write fails: none of its changes are published; its earliest record is reported;
- a publish fails: that change and the key's later ones are not published; the failed record is reported;
- the cache rejects an item as too large: the record is poison, the key is deleted instead, the rest is published;
- a systemic failure (authentication, permission, missing cache): no new keys are started, their records reported.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from stream_processor.key_sync import CacheCalls, KeyOutcome, KeySync, MomentoGateway, for_each_key
from stream_processor.momento_errors import FailureKind
from stream_processor.planner import KeyPlan, Plan, PoisonRecord
from stream_processor.retries import Backoff, Deadline

__all__ = ["ExecutionReport", "MomentoGateway", "execute_plan"]


@dataclass
class ExecutionReport:
    """What happened: records to report to Lambda, poison found on the way, and the counts for logs and metrics."""

    failed_sequence_numbers: list[str] = field(default_factory=list)
    poison: list[PoisonRecord] = field(default_factory=list)
    sets: int = 0
    deletes: int = 0
    publishes: int = 0
    retries: int = 0
    failed_keys: int = 0
    systemic_causes: Counter[str] = field(default_factory=Counter)
    exhausted_causes: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: KeyOutcome) -> None:
        self.sets += outcome.sets
        self.deletes += outcome.deletes
        self.publishes += outcome.published
        self.poison.extend(outcome.poison)
        if outcome.failure is None:
            return
        if outcome.failed_change is not None:
            self.failed_sequence_numbers.append(outcome.failed_change.sequence_number)
        if not outcome.written:
            self.failed_keys += 1
        causes = self.systemic_causes if outcome.failure.kind is FailureKind.SYSTEMIC else self.exhausted_causes
        causes[outcome.failure.cause] += 1


async def execute_plan(
    plan: Plan,
    gateway: MomentoGateway,
    deadline: Deadline,
    *,
    max_in_flight: int,
    backoff: Backoff | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> ExecutionReport:
    """Run every key plan; never raises for a Momento failure (it is classified and reported instead)."""
    calls = CacheCalls(gateway, lambda: deadline, backoff=backoff, rng=rng, sleep=sleep)
    sync = KeySync(calls)
    report = ExecutionReport()

    async def apply(key_plan: KeyPlan) -> KeyOutcome:
        outcome = await sync.apply(key_plan)
        report.add(outcome)
        return outcome

    def skip(key_plan: KeyPlan) -> None:  # Momento refuses every request: report the key without trying it
        report.failed_keys += 1
        report.failed_sequence_numbers.append(key_plan.earliest_sequence_number)

    await for_each_key(
        plan.key_plans,
        apply,
        concurrency=min(max_in_flight, len(plan.key_plans)),
        halted=lambda: bool(report.systemic_causes),
        skipped=skip,
    )
    report.retries = calls.retries
    return report
