"""Fault rules for the local Momento server: which calls fail, how and how often, reproducibly from a seed.

A probabilistic rule decides each call from the seed and the call's identity, never from the order calls arrive in,
so concurrent callers get the same faults run after run: the identity is the method, the key (for Publish the JSON
message's "key"), a digest of the value (Set body, Publish message; optional) and the attempt, how many calls with
that same identity the book has seen since it was last re-seeded. A stable hash (SHA-256, not Python's salted
``hash``) of (seed, rule index, identity, attempt) maps to [0, 1) and is compared with the rule's probability.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc

#: Calls that change state: only these can take effect and still fail (`FaultRule.apply_then_fail`).
WRITE_METHODS = frozenset({"Set", "SetIfNotExists", "Delete", "Publish", "CreateCache", "DeleteCache", "FlushCache"})

#: The `err` trailer Momento sends with each kind of RESOURCE_EXHAUSTED; the SDK words its message from it.
ERR_OPERATIONS_RATE = "operations_rate_limit_exceeded"
ERR_THROUGHPUT_RATE = "throughput_rate_limit_exceeded"
ERR_ITEM_SIZE = "item_size_limit_exceeded"

DEFAULT_FAULT_CODES: tuple[grpc.StatusCode, ...] = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
DEFAULT_FAULT_METHODS: tuple[str, ...] = ("Set", "Delete", "Publish")


@dataclass(frozen=True, kw_only=True)
class FaultRule:
    """One kind of failure the server injects into matching calls.

    `method` is the gRPC method name ("Set", "Get", "Delete", "SetIfNotExists", "Publish", "Subscribe",
    "CreateCache", ...); None matches any. `key` is the cache key of a cache call, or for Publish the
    "key" member of a JSON message; None matches any. `code` is the status to answer with; None injects
    only `latency_seconds`. `err` becomes the `err` trailing-metadata value. `times` caps how many calls
    the rule fails (None: no cap), counted in arrival order; `probability` is decided per call identity (see the
    module docstring), reproducibly from the server's seed.
    With `apply_then_fail` a write takes effect and the call still fails, like a timeout after the
    service applied it.
    """

    method: str | None = None
    key: str | None = None
    code: grpc.StatusCode | None
    err: str | None = None
    probability: float = 1.0
    times: int | None = None
    latency_seconds: float = 0.0
    apply_then_fail: bool = False
    details: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {self.probability}")
        if self.times is not None and self.times < 0:
            raise ValueError(f"times must be >= 0 or None, got {self.times}")
        if self.latency_seconds < 0:
            raise ValueError(f"latency_seconds must be >= 0, got {self.latency_seconds}")
        if self.code is grpc.StatusCode.OK:
            raise ValueError("code OK is not a fault; use code=None for latency only")
        if self.code is None and (self.err is not None or self.apply_then_fail):
            raise ValueError("err and apply_then_fail need a code")
        if self.code is None and self.latency_seconds == 0:
            raise ValueError("a rule needs a code, a latency or both")

    @property
    def status_details(self) -> str:
        """The status message sent with the injected code."""
        if self.details:
            return self.details
        name = self.code.name if self.code is not None else "LATENCY"
        return f"injected fault: {name}" + (f" ({self.err})" if self.err else "")

    def matches(self, method: str, key: Callable[[], str | None]) -> bool:
        """Whether this rule applies to a call of `method` whose key `key()` returns (computed only if needed)."""
        if self.method is not None and self.method != method:
            return False
        return self.key is None or self.key == key()


class FaultBook:
    """The active fault rules, how often each fired and how often each call identity was seen; thread-safe.

    With `by_value` False the value is left out of a call's identity: runs whose values differ (timestamps in items
    or messages) then still get the same faults per key and attempt.
    """

    def __init__(self, seed: int = 0, *, by_value: bool = True) -> None:
        self._seed = seed
        self._by_value = by_value
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._fired: list[int] = []
        self._attempts: Counter[bytes] = Counter()

    def add(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            for rule in rules:
                self._rules.append(rule)
                self._fired.append(0)

    def clear(self, *, reseed: bool = False) -> None:
        """Forget the rules; with `reseed` also the attempts seen, so the same calls draw as after construction."""
        with self._lock:
            self._rules.clear()
            self._fired.clear()
            if reseed:
                self._attempts.clear()

    def pick(self, method: str, key: Callable[[], str | None], value: bytes | None = None) -> FaultRule | None:
        """The first rule that fires for this call, counted as one injection; None when the call runs clean.

        Rules are tried in the order they were added; a rule that matches but loses its draw lets the next one try.
        Attempts are counted only while the book has rules (no cost otherwise).
        """
        if not self._rules:  # the common case in benchmarks: no lock, no hashing
            return None
        call_key = key()
        with self._lock:
            identity = _identity(method, call_key, value if self._by_value else None)
            self._attempts[identity] += 1
            attempt = self._attempts[identity]
            for index, rule in enumerate(self._rules):
                if rule.times is not None and self._fired[index] >= rule.times:
                    continue
                if not rule.matches(method, lambda: call_key):
                    continue
                if rule.probability < 1.0 and self._draw(index, identity, attempt) >= rule.probability:
                    continue
                self._fired[index] += 1
                return rule
        return None

    def _draw(self, rule_index: int, identity: bytes, attempt: int) -> float:
        """A number in [0, 1) fixed by the seed, the rule, the call's identity and its attempt."""
        material = b"|".join([str(self._seed).encode(), str(rule_index).encode(), identity, str(attempt).encode()])
        return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2**64


def _identity(method: str, key: str | None, value: bytes | None) -> bytes:
    value_digest = None if value is None else hashlib.sha256(value).hexdigest()
    return hashlib.sha256(json.dumps([method, key, value_digest]).encode()).digest()


def message_key(value: bytes | str) -> str | None:
    """The "key" member of a JSON topic message, or None when the message is not such JSON."""
    try:
        document = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    key = document.get("key") if isinstance(document, dict) else None
    return key if isinstance(key, str) else None


def fault_rate(
    rate: float,
    codes: Sequence[grpc.StatusCode] = DEFAULT_FAULT_CODES,
    methods: Sequence[str] = DEFAULT_FAULT_METHODS,
) -> list[FaultRule]:
    """Rules that fail about `rate` of the calls to each of `methods`, spread evenly over `codes`.

    Throttling carries the operations-rate `err` trailer; a DEADLINE_EXCEEDED write has taken effect
    (the ambiguous outcome of a real timeout), so a demo shows at-least-once delivery.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be within [0, 1), got {rate}")
    if rate == 0.0 or not codes:
        return []
    # Rules are tried in turn, so each fires with p where 1 - (1 - p)^n == rate.
    per_code = 1.0 - (1.0 - rate) ** (1.0 / len(codes))
    rules = []
    for method in methods:
        for code in codes:
            rules.append(
                FaultRule(
                    method=method,
                    code=code,
                    err=ERR_OPERATIONS_RATE if code is grpc.StatusCode.RESOURCE_EXHAUSTED else None,
                    probability=per_code,
                    apply_then_fail=code is grpc.StatusCode.DEADLINE_EXCEEDED and method in WRITE_METHODS,
                )
            )
    return rules
