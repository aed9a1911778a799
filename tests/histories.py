"""Random table histories and Momento fault schedules for the no-loss property, and the table's final state.

A history is a list of writes (PutItem, UpdateItem, DeleteItem) on a handful of keys of a weather table keyed by
``Location``, some carrying a DynamoDB TTL attribute (``ExpiresAt``) already in the past or still in the future. A
fault schedule is a list of the local Momento server's fault rules: transient failures (UNAVAILABLE,
DEADLINE_EXCEEDED, rate-limit RESOURCE_EXHAUSTED) per method and per key, from rare to most calls failing, and
item-too-large (poison) keys. The strategies here only describe; `write_history` and `table_state` touch the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from hypothesis import strategies as st

from local_pipeline.momento_server import ERR_ITEM_SIZE, ERR_OPERATIONS_RATE, FaultRule, fault_rate
from local_pipeline.weather import WeatherTable
from tests.oracles import plain

__all__ = [
    "KEY_ATTRIBUTE",
    "LOCATIONS",
    "TTL_ATTRIBUTE",
    "Delete",
    "FaultSchedule",
    "Put",
    "Update",
    "Write",
    "attribute_sets",
    "create_table",
    "fault_schedules",
    "histories",
    "plain",
    "table_state",
    "write_history",
]

KEY_ATTRIBUTE = "Location"
TTL_ATTRIBUTE = "ExpiresAt"
LOCATIONS = ("Seattle", "Tokyo", "Lima", "Oslo", "Nairobi", "Perth")
#: Far enough from "now" that the processor, the redrive and the assertions agree on which items have expired.
TTL_OFFSET_SECONDS = 6 * 3600

Expiry = Literal["none", "past", "future"]


@dataclass(frozen=True)
class Put:
    """PutItem: replace the whole item."""

    location: str
    attributes: Mapping[str, Any]
    expiry: Expiry


@dataclass(frozen=True)
class Update:
    """UpdateItem: set some attributes (creating the item when absent), maybe set or remove the TTL attribute."""

    location: str
    attributes: Mapping[str, Any]
    expiry: Literal["keep", "past", "future", "remove"]


@dataclass(frozen=True)
class Delete:
    """DeleteItem (no stream record when the item is already gone)."""

    location: str


Write = Put | Update | Delete


# -- histories -----------------------------------------------------------------------------------------------------

_numbers = st.one_of(
    st.integers(-60, 60).map(str),
    # exact decimal digits, which the cache value must keep (never through float)
    st.decimals(min_value=-100, max_value=100, places=3, allow_nan=False, allow_infinity=False).map(str),
)
_attribute_values: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "MaxTemp": _numbers.map(lambda n: {"N": n}),
    "MinTemp": _numbers.map(lambda n: {"N": n}),
    "ChancesOfPrecipitation": st.integers(0, 100).map(lambda n: {"N": str(n)}),
    "Forecast": st.sampled_from(["sunny", "rain", "snow", "fog", "wind ☂"]).map(lambda s: {"S": s}),
    "Alert": st.booleans().map(lambda b: {"BOOL": b}),
    "Stations": st.lists(st.integers(1, 9).map(lambda n: {"N": str(n)}), max_size=3).map(lambda items: {"L": items}),
}


@st.composite
def attribute_sets(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(_attribute_values)), min_size=1, max_size=4, unique=True))
    return {name: draw(_attribute_values[name]) for name in names}


def _write(locations: Sequence[str]) -> st.SearchStrategy[Write]:
    location = st.sampled_from(locations)
    expiry = st.sampled_from(["none", "none", "past", "future"])
    return st.one_of(
        st.builds(Put, location, attribute_sets(), expiry),
        st.builds(Update, location, attribute_sets(), st.sampled_from(["keep", "keep", "past", "future", "remove"])),
        st.builds(Delete, location),
    )


@st.composite
def histories(draw: st.DrawFn, max_writes: int = 24) -> tuple[tuple[str, ...], list[Write]]:
    """A handful of keys (2-6) and a history of writes on them."""
    count = draw(st.integers(2, len(LOCATIONS)))
    locations = LOCATIONS[:count]
    size = draw(st.integers(1, max_writes))  # drawn first: a list strategy alone mostly makes short histories
    return locations, draw(st.lists(_write(locations), min_size=size, max_size=size))


def create_table(client: Any, name: str) -> str:
    """A weather table with a NEW_AND_OLD_IMAGES stream and TTL on ExpiresAt (the demo's); returns the stream ARN."""
    return WeatherTable.create(client, name)[1]


def _expires_at(expiry: str, now: float) -> dict[str, str]:
    offset = -TTL_OFFSET_SECONDS if expiry == "past" else TTL_OFFSET_SECONDS
    return {"N": str(int(now) + offset)}


def write_history(client: Any, table: str, writes: Sequence[Write], now: float) -> None:
    """Apply the writes to the table in order (each one produces at most one stream record, moto aside)."""
    for write in writes:
        key = {KEY_ATTRIBUTE: {"S": write.location}}
        if isinstance(write, Delete):
            client.delete_item(TableName=table, Key=key)
        elif isinstance(write, Put):
            item = {**key, **write.attributes}
            if write.expiry != "none":
                item[TTL_ATTRIBUTE] = _expires_at(write.expiry, now)
            client.put_item(TableName=table, Item=item)
        else:
            values = dict(write.attributes)
            if write.expiry in ("past", "future"):
                values[TTL_ATTRIBUTE] = _expires_at(write.expiry, now)
            names = {f"#a{index}": name for index, name in enumerate(values)}
            expression = "SET " + ", ".join(f"{alias} = :v{index}" for index, alias in enumerate(names))
            if write.expiry == "remove":
                names["#ttl"] = TTL_ATTRIBUTE
                expression += " REMOVE #ttl"
            client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":v{index}": value for index, value in enumerate(values.values())},
            )


def table_state(client: Any, table: str, now: float) -> dict[str, dict[str, Any]]:
    """The table's final state per cache key (the Location), leaving out items whose TTL has passed."""
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    state = {}
    for item in items:
        expires_at = item.get(TTL_ATTRIBUTE, {}).get("N")
        if expires_at is not None and float(expires_at) <= now:
            continue  # expired: DynamoDB deletes it lazily, the cache must not hold it
        state[item[KEY_ATTRIBUTE]["S"]] = {name: plain(value) for name, value in item.items()}
    return state


# -- fault schedules -----------------------------------------------------------------------------------------------

_TRANSIENT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
_PROBABILITIES = st.one_of(st.sampled_from([0.02, 0.1, 0.3, 0.5, 0.75, 0.9]), st.floats(0.0, 0.9))


@dataclass(frozen=True)
class FaultSchedule:
    """The server's fault rules for one run: poison (item-too-large) keys first, then transient faults.

    `storm` is the share of every Set, Delete and Publish that fails besides the targeted rules (0: none).
    """

    poison_keys: tuple[str, ...]
    transient: tuple[FaultRule, ...]
    storm: float = 0.0

    @property
    def poison_rules(self) -> list[FaultRule]:
        """Every Set of a poison key meets the item-size limit (put them first: no other rule then preempts them)."""
        return [
            FaultRule(method="Set", key=key, code=grpc.StatusCode.RESOURCE_EXHAUSTED, err=ERR_ITEM_SIZE)
            for key in self.poison_keys
        ]

    @property
    def transient_rules(self) -> list[FaultRule]:
        return [*self.transient, *fault_rate(self.storm)]


@st.composite
def _transient_rule(draw: st.DrawFn, locations: Sequence[str]) -> FaultRule:
    code = draw(st.sampled_from(_TRANSIENT_CODES))
    # A write that took effect and still failed is the ambiguous outcome of a timeout or a dropped connection.
    ambiguous = code is not grpc.StatusCode.RESOURCE_EXHAUSTED and draw(st.booleans())
    return FaultRule(
        method=draw(st.sampled_from([None, "Set", "Delete", "Publish"])),
        key=draw(st.one_of(st.none(), st.sampled_from(locations))),
        code=code,
        err=ERR_OPERATIONS_RATE if code is grpc.StatusCode.RESOURCE_EXHAUSTED else None,
        probability=draw(_PROBABILITIES),
        apply_then_fail=ambiguous,
    )


@st.composite
def fault_schedules(draw: st.DrawFn, locations: Sequence[str]) -> FaultSchedule:
    """Poison keys (usually none), 0-4 targeted transient rules over the given keys, and sometimes a storm."""
    poison: list[str] = []
    if draw(st.integers(0, 3)) == 0:  # poison is the rarer case
        poison = draw(st.lists(st.sampled_from(locations), min_size=1, max_size=2, unique=True))
    transient = draw(st.lists(_transient_rule(locations), max_size=4))
    storm = draw(st.sampled_from([0.0, 0.1, 0.3, 0.6, 0.9]))
    return FaultSchedule(tuple(poison), tuple(transient), storm)
