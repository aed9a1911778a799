"""Subscriber side: the change messages carried by one received topic message, whichever publish mode sent it.

With ``TOPIC_PACKING=off`` every topic message is one change message (a JSON object); with ``on`` it is a JSON
array of change messages in publish order (see ``stream_processor.topic_packing``). ``decode_topic_message`` turns
either into a list of change messages (dicts) in order, so a subscriber does not depend on the mode. It needs
neither the Momento SDK nor boto3: give it the value of a received item (text or bytes).

Numbers keep the exact digits DynamoDB holds: non-integers decode as ``Decimal`` unless ``parse_float`` says
otherwise. Publishes are at-least-once: deduplicate on ``eventID``.

Example, with the Momento SDK (the README has a complete subscriber loop)::

    async for item in subscription:
        if isinstance(item, TopicSubscriptionItem.Text | TopicSubscriptionItem.Binary):
            for change in decode_topic_message(item.value):
                print(change["eventName"], change["key"])
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

__all__ = ["NotAChangeMessage", "decode_topic_message"]

#: Members every change message has, whatever its form (full, truncated, minimal, or a redrive's RESYNC).
_IDENTIFYING = ("eventName", "table", "key")


class NotAChangeMessage(ValueError):
    """A topic message that is neither a change message nor a packed array of change messages."""


def decode_topic_message(message: str | bytes, *, parse_float: Callable[[str], Any] = Decimal) -> list[dict[str, Any]]:
    """The change messages in ``message`` (a single one, or a packed array), in publish order.

    Raises ``NotAChangeMessage`` for anything else: text that is not JSON, or JSON that is not a change message or a
    non-empty array of them.
    """
    try:
        text = message.decode("utf-8") if isinstance(message, bytes | bytearray) else message
        decoded = json.loads(text, parse_float=parse_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotAChangeMessage(f"not a change message: the topic message is not UTF-8 JSON ({error})") from None
    except TypeError:
        raise NotAChangeMessage(f"not a change message: expected text or bytes, got {type(message).__name__}") from None
    if isinstance(decoded, dict):
        return [_checked(decoded, None)]
    if isinstance(decoded, list) and decoded:
        return [_checked(change, position) for position, change in enumerate(decoded)]
    shape = "an empty array" if decoded == [] else f"a JSON {type(decoded).__name__}"
    raise NotAChangeMessage(f"not a change message: expected a JSON object or a non-empty array of them, got {shape}")


def _checked(change: Any, position: int | None) -> dict[str, Any]:
    where = "" if position is None else f" (element {position} of the packed array)"
    if not isinstance(change, dict):
        raise NotAChangeMessage(f"not a change message{where}: expected a JSON object, got {type(change).__name__}")
    missing = [name for name in _IDENTIFYING if not isinstance(change.get(name), str)]
    if missing:
        raise NotAChangeMessage(f"not a change message{where}: no text {', '.join(missing)}")
    return change
