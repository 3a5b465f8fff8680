"""Events as they travel on Kafka: flat JSON objects, the envelope plus the fields topics.yaml declares.

One generic shape instead of a class per event: the declarations live in topics.yaml, and every event is
checked against them when it is made and when it is read.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, TypeGuard

import orjson

from agents.catalog import InvalidEvent, catalog

Event = dict[str, Any]
# Order ids are offsets plus one; the largest any JSON reader keeps exact (2**53 - 1) is the bound.
MAX_ORDER_ID = 2**53 - 1


def is_order_id(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ORDER_ID

# Derived event ids are a pure function of their cause, so a redelivered cause yields the same event id and
# every consumer can drop the duplicate.
_DERIVED = uuid.UUID("6f1c5a9e-0b7a-4a38-9d8e-2f0f1b7c9e10")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def make_event(event_type: str, *, correlation_id: str, cause: Event | str | None = None, **fields: Any) -> Event:
    """Build an event of a declared type.

    With a `cause` (the event it reacts to, or a name for a decision taken once per order), its id is derived
    from the cause, so deciding again yields the same id.
    """
    cause_id = cause["eventId"] if isinstance(cause, dict) else cause
    event_id = str(uuid.uuid5(_DERIVED, f"{cause_id}/{event_type}")) if cause_id else uuid.uuid4().hex
    event = {
        "type": event_type,
        "eventId": event_id,
        "occurredAt": now(),
        "correlationId": correlation_id,
        **fields,
    }
    catalog().validate(event)
    return event


def encode(event: Event) -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes | None, topic_name: str) -> Event:
    """Parse and validate a message read from `topic_name`; raise InvalidEvent naming what is wrong."""
    if raw is None:
        raise InvalidEvent("empty message")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    catalog().validate(event, topic_name)
    return event


def key_of(event: Event) -> bytes | None:
    """The Kafka key: the value of the topic's key field (orderId), as text."""
    key_field = catalog().topic_of_event(event["type"]).key
    return str(event[key_field]).encode() if key_field else None
