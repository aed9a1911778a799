"""Virtual Lambda time: the real executor's backoffs on per-key clocks, with jitter that other keys cannot change."""

from __future__ import annotations

import asyncio
import json

from local_pipeline.virtual_time import VirtualLambdaTime
from stream_processor import app
from stream_processor.config import load_settings
from stream_processor.momento_errors import CallFailure, FailureKind
from stream_processor.planner import ChangeRules, plan_batch, read_batch
from stream_processor.retries import Deadline
from tests.stream_processor.records import insert

RULES = ChangeRules.from_settings(
    load_settings({"CACHE_NAME": "c", "TOPIC_NAME": "t", "MOMENTO_LOCAL_ENDPOINT": "127.0.0.1:9"})
)
START = 1_800_000_000.0
RETRYABLE = CallFailure(FailureKind.RETRYABLE, "SERVER_UNAVAILABLE")


class ScriptedGateway:
    """Fails each key's first ``failures[key]`` sets, then succeeds; notes the Lambda clock at every call."""

    cache_call_seconds = 1.1
    publish_call_seconds = 5.0

    def __init__(self, time: VirtualLambdaTime, failures: dict[str, int]) -> None:
        self.time = time
        self.failures = dict(failures)
        self.calls: dict[str, list[float]] = {}

    async def set(self, key: str, value: bytes, ttl_ms: int) -> CallFailure | None:
        self.calls.setdefault(key, []).append(self.time())
        await asyncio.sleep(0)  # let the other keys interleave
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            return RETRYABLE
        return None

    async def delete(self, key: str) -> CallFailure | None:
        return None

    async def publish(self, message: bytes) -> CallFailure | None:
        self.calls.setdefault(json.loads(message)["key"], []).append(self.time())
        return None


def invoke(time: VirtualLambdaTime, keys: list[str], failures: dict[str, int]) -> ScriptedGateway:
    """One invocation through the installed seam: the real ``execute_plan``, its retries and backoffs."""
    records = [insert(key, seq=index + 1) for index, key in enumerate(keys)]
    plan = plan_batch(read_batch(records, RULES), RULES, START)
    gateway = ScriptedGateway(time, failures)
    deadline_at = time() + 60.0

    def handler(event, context):
        deadline = Deadline(lambda: int((deadline_at - time()) * 1000))
        return asyncio.run(app.execute_plan(plan, gateway, deadline, max_in_flight=8))

    with time.installed():
        time.wrap(handler)({}, None)
    return gateway


def test_a_keys_backoffs_move_only_its_own_clock_and_the_invocation_lasts_as_long_as_the_slowest_key():
    time = VirtualLambdaTime(START, seed=1)

    gateway = invoke(time, ["slow", "quick", "fine"], {"slow": 4, "quick": 1})

    slow, quick, fine = gateway.calls["slow"], gateway.calls["quick"], gateway.calls["fine"]
    assert len(slow) == 5 + 1 and len(quick) == 2 + 1  # the sets with their retries, then the publish
    assert fine == [START, START]  # a key that never waits sees no time pass, whatever the others do
    assert slow == sorted(slow) and slow[-1] > START
    assert quick[-1] > START
    assert time() == max(slow[-1], quick[-1])  # after the invocation: the longest lane


def test_the_delays_a_key_draws_do_not_depend_on_the_other_keys():
    alone = invoke(VirtualLambdaTime(START, seed=5), ["Oslo"], {"Oslo": 3})
    crowded = invoke(VirtualLambdaTime(START, seed=5), ["Lima", "Oslo", "Cairo"], {"Lima": 2, "Oslo": 3, "Cairo": 5})
    other_seed = invoke(VirtualLambdaTime(START, seed=6), ["Oslo"], {"Oslo": 3})

    assert crowded.calls["Oslo"] == alone.calls["Oslo"]
    assert other_seed.calls["Oslo"] != alone.calls["Oslo"]


def test_the_seam_is_put_back_after_the_block():
    execute_plan = app.execute_plan

    with VirtualLambdaTime(START, seed=1).installed():
        assert app.execute_plan is not execute_plan

    assert app.execute_plan is execute_plan
