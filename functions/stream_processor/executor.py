"""Plan execution: apply each key's cache write, then publish its changes in order, keys concurrently.

Per key: one cache write (retried while the invocation has time), then the key's change messages one after another,
each only after the cache holds that change or a later one. Keys run concurrently on one event loop, with at most
``max_in_flight`` Momento requests outstanding. Outcomes per the failure rules:

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
from typing import Protocol

from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.planner import KeyPlan, Plan, PoisonRecord
from stream_processor.retries import Backoff, Deadline, call_with_retries

__all__ = ["ExecutionReport", "MomentoGateway", "execute_plan"]


class MomentoGateway(Protocol):
    """The three Momento calls the executor makes; each returns None on success or the classified failure."""

    cache_call_seconds: float
    publish_call_seconds: float

    async def set(self, key: str, value: bytes, ttl_ms: int) -> CallFailure | None: ...

    async def delete(self, key: str) -> CallFailure | None: ...

    async def publish(self, message: bytes) -> CallFailure | None: ...


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


async def execute_plan(
    plan: Plan,
    gateway: MomentoGateway,
    deadline: Deadline,
    *,
    max_in_flight: int,
    backoff: Backoff | None = None,
    rng: random.Random | None = None,
) -> ExecutionReport:
    """Run every key plan; never raises for a Momento failure (it is classified and reported instead)."""
    run = _Execution(gateway, deadline, max_in_flight, backoff or Backoff(), rng or random.Random())
    pending = iter(plan.key_plans)
    workers = min(max_in_flight, len(plan.key_plans))
    # A fixed pool of workers pulling key plans keeps memory flat at any batch size; each worker holds at most one
    # request in flight, so the pool size is the in-flight bound.
    await asyncio.gather(*(run.worker(pending) for _ in range(workers)))
    return run.report


class _Execution:
    def __init__(self, gateway: MomentoGateway, deadline: Deadline, max_in_flight: int, backoff: Backoff, rng):
        self.gateway = gateway
        self.deadline = deadline
        self.max_in_flight = max_in_flight
        self.backoff = backoff
        self.rng = rng
        self.report = ExecutionReport()
        self.halted = False

    async def worker(self, pending) -> None:
        for key_plan in pending:
            await self.apply_key(key_plan)

    async def apply_key(self, key_plan: KeyPlan) -> None:
        report = self.report
        if self.halted:
            self._fail_key(key_plan, None)
            return
        failure = await self._write(key_plan)
        too_large = None
        if failure is not None and failure.kind is FailureKind.POISON and key_plan.write is not None:
            # The cache refuses this item for good: dead-letter the record, and delete the key so the cache never
            # keeps a state the table has moved past.
            too_large = key_plan.writer
            report.poison.append(PoisonRecord(too_large.sequence_number, failure.cause, too_large.record))
            failure = await self._call(lambda: self.gateway.delete(key_plan.cache_key), self.gateway.cache_call_seconds)
            if failure is None:
                report.deletes += 1
        if failure is not None:
            self._fail_key(key_plan, failure)
            return
        for change in key_plan.changes:
            if change.message is None or change is too_large:
                continue  # poison: in the dead-letter queue, published by the redrive
            message = change.message
            failure = await self._call(lambda m=message: self.gateway.publish(m), self.gateway.publish_call_seconds)
            if failure is None:
                report.publishes += 1
                continue
            if failure.kind is FailureKind.POISON:
                report.poison.append(PoisonRecord(change.sequence_number, failure.cause, change.record))
                continue
            self._note(failure)
            report.failed_sequence_numbers.append(change.sequence_number)
            return

    async def _write(self, key_plan: KeyPlan) -> CallFailure | None:
        write, gateway = key_plan.write, self.gateway
        if write is None:
            failure = await self._call(lambda: gateway.delete(key_plan.cache_key), gateway.cache_call_seconds)
            self.report.deletes += failure is None
        else:
            failure = await self._call(
                lambda: gateway.set(key_plan.cache_key, write.value, write.ttl_ms), gateway.cache_call_seconds
            )
            self.report.sets += failure is None
        return failure

    async def _call(self, operation: Callable[[], Awaitable[CallFailure | None]], worst_call: float):
        return await call_with_retries(
            operation, self.deadline, worst_call, backoff=self.backoff, rng=self.rng, on_retry=self._count_retry
        )

    def _count_retry(self, _failure: CallFailure) -> None:
        self.report.retries += 1

    def _fail_key(self, key_plan: KeyPlan, failure: CallFailure | None) -> None:
        self.report.failed_keys += 1
        self.report.failed_sequence_numbers.append(key_plan.earliest_sequence_number)
        if failure is not None:
            self._note(failure)

    def _note(self, failure: CallFailure) -> None:
        if failure.kind is FailureKind.SYSTEMIC:
            self.halted = True
            self.report.systemic_causes[failure.cause] += 1
        else:
            self.report.exhausted_causes[failure.cause] += 1
