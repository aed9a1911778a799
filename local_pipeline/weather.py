"""The demo's workload: the Momento weather demo's table, and a reproducible stream of changes written to it.

The table has the partition key ``Location`` and the attributes ``MaxTemp``, ``MinTemp``, ``ChancesOfPrecipitation``
and a DynamoDB TTL attribute ``ExpiresAt`` (epoch seconds). A history mixes new items, replaced items, partial
updates, deletes, items without a TTL and items whose TTL has already passed. Every write changes exactly one item,
so every write is exactly one stream record (a delete is only drawn for an item that exists).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

__all__ = [
    "KEY_ATTRIBUTE",
    "TTL_ATTRIBUTE",
    "WeatherChange",
    "WeatherTable",
    "WriteKind",
    "is_expired",
    "locations",
    "plan_changes",
]

KEY_ATTRIBUTE = "Location"
TTL_ATTRIBUTE = "ExpiresAt"

_CITIES = (
    "Seattle", "Tokyo", "Lima", "Oslo", "Nairobi", "Reykjavik", "Mumbai", "Santiago", "Cairo", "Vancouver",
    "Lisbon", "Auckland", "Denver", "Hanoi", "Dakar", "Helsinki", "Bogota", "Perth", "Montreal", "Istanbul",
    "Accra", "Quito", "Tromso", "Kyoto", "Havana", "Tunis", "Austin", "Bergen", "Manila", "Cusco",
    "Chicago", "Lagos", "Porto", "Hobart", "Anchorage", "Seoul", "Lyon", "Muscat", "Calgary", "Tbilisi",
    "Boise", "Recife", "Nice", "Oaxaca", "Tallinn", "Darwin", "Ushuaia", "Dublin", "Hilo", "Kigali",
)  # fmt: skip


class WriteKind(StrEnum):
    """What one write does to the table, and the stream record it produces."""

    PUT_NEW = "new item"  # INSERT
    PUT_REPLACE = "replaced item"  # MODIFY
    UPDATE = "partial update"  # MODIFY
    PUT_EXPIRED = "already-expired item"  # INSERT or MODIFY with ExpiresAt in the past
    DELETE = "delete"  # REMOVE


@dataclass(frozen=True)
class WeatherChange:
    """One write to the weather table: its kind, the location, the attributes it sets (none for a delete) and, for
    a partial update, how many degrees both temperatures move (a revised forecast, applied with ADD)."""

    kind: WriteKind
    location: str
    attributes: dict[str, int]
    temperature_shift: int = 0


def locations(count: int) -> list[str]:
    """``count`` distinct location names: real city names, then the same names numbered ("Seattle 2")."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return [
        _CITIES[index % len(_CITIES)] + (f" {index // len(_CITIES) + 1}" if index >= len(_CITIES) else "")
        for index in range(count)
    ]


def plan_changes(count: int, keys: int, rng: random.Random, now: float) -> list[WeatherChange]:
    """A history of ``count`` writes over ``keys`` locations, reproducible from ``rng``.

    Live TTLs lie one hour to two days ahead (a day at most reaches the cache: its TTL cap); expired ones one
    minute to three days behind (recent enough that DynamoDB treats them as expired, never five years old).
    """
    names = locations(keys)
    present: set[str] = set()
    changes: list[WeatherChange] = []
    for _ in range(count):
        location = rng.choice(names)
        if location in present:
            kind = rng.choices(
                (WriteKind.PUT_REPLACE, WriteKind.UPDATE, WriteKind.DELETE, WriteKind.PUT_EXPIRED),
                weights=(35, 35, 15, 15),
            )[0]
        else:
            kind = rng.choices((WriteKind.PUT_NEW, WriteKind.PUT_EXPIRED), weights=(85, 15))[0]
        if kind is WriteKind.DELETE:
            present.discard(location)
            changes.append(WeatherChange(kind, location, {}))
        elif kind is WriteKind.UPDATE:
            shift = rng.choice((-3, -2, -1, 1, 2, 3))
            changes.append(WeatherChange(kind, location, {"ChancesOfPrecipitation": rng.randint(0, 100)}, shift))
        else:
            present.add(location)
            attributes = _forecast(rng)
            if kind is WriteKind.PUT_EXPIRED:
                attributes[TTL_ATTRIBUTE] = int(now) - rng.randint(60, 3 * 86400)
            elif rng.random() < 0.8:  # some items carry no TTL: the cache gives them its default TTL
                attributes[TTL_ATTRIBUTE] = int(now) + rng.randint(3600, 2 * 86400)
            changes.append(WeatherChange(kind, location, attributes))
    return changes


def _forecast(rng: random.Random) -> dict[str, int]:
    high = rng.randint(-10, 40)
    return {"MaxTemp": high, "MinTemp": high - rng.randint(2, 15), "ChancesOfPrecipitation": rng.randint(0, 100)}


def is_expired(item: dict[str, Any], now: float) -> bool:
    """Whether an item (plain values) is past its TTL: DynamoDB still holds it until its TTL sweep, lazily."""
    expires_at = item.get(TTL_ATTRIBUTE)
    return expires_at is not None and float(expires_at) <= now


class WeatherTable:
    """The weather table in DynamoDB (moto in the demo), through a boto3 DynamoDB client."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    @classmethod
    def create(cls, client: Any, name: str = "weather") -> tuple[WeatherTable, str]:
        """Create the table with a NEW_AND_OLD_IMAGES stream and TTL on ``ExpiresAt``; returns it and the stream ARN."""
        description = client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
        return cls(client, name), description["LatestStreamArn"]

    def write(self, change: WeatherChange) -> None:
        key = {KEY_ATTRIBUTE: {"S": change.location}}
        if change.kind is WriteKind.DELETE:
            self.client.delete_item(TableName=self.name, Key=key)
        elif change.kind is WriteKind.UPDATE:
            names = sorted(change.attributes)
            self.client.update_item(
                TableName=self.name,
                Key=key,
                UpdateExpression="SET "
                + ", ".join(f"#a{i} = :v{i}" for i in range(len(names)))
                + " ADD MaxTemp :shift, MinTemp :shift",
                ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(names)},
                ExpressionAttributeValues={
                    ":shift": {"N": str(change.temperature_shift)},
                    **{f":v{i}": {"N": str(change.attributes[name])} for i, name in enumerate(names)},
                },
            )
        else:
            item = {**key, **{name: {"N": str(value)} for name, value in change.attributes.items()}}
            self.client.put_item(TableName=self.name, Item=item)

    def write_all(self, changes: Iterable[WeatherChange], on_write: Callable[[], None] | None = None) -> None:
        for change in changes:
            self.write(change)
            if on_write is not None:
                on_write()

    def items(self) -> dict[str, dict[str, Any]]:
        """Every item the table holds (expired ones included), by location, as plain values (numbers as Decimal)."""
        deserializer = TypeDeserializer()
        found: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {"TableName": self.name, "ConsistentRead": True}
        while True:
            page = self.client.scan(**request)
            for item in page["Items"]:
                plain = {name: deserializer.deserialize(value) for name, value in item.items()}
                found[plain[KEY_ATTRIBUTE]] = plain
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
