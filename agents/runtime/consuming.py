"""What every consumer of bread does with each message, Faust agent or pay's consumer alike: decode and
check it against topics.yaml (an event), or as a table's row (a change another context's table announced on its
changelog), carry its correlation id, hand it to its handler, count it — and when any of that fails, dead-letter
it with the reason and go on (a poison message never stops a consumer) — then mark it handled for the liveness
check."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import orjson

from agents import correlation
from agents.catalog import InvalidEvent
from agents.deadletters import dead_letter
from agents.events import Event, decode
from agents.runtime import tracing
from agents.runtime.metrics import EVENTS_CONSUMED, POISON_EVENTS, Progress
from agents.runtime.tracing import Carrier

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
Row = dict[str, Any]
ChangeHandler = Callable[[str, Row | None], Awaitable[None]]  # (key, the row now or None once deleted)
Send = Callable[[Event], Awaitable[object]]


@dataclass(frozen=True)
class Received:
    """A message as it came off a topic."""
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    sent_at: float | None = None  # its Kafka timestamp: seconds since the epoch, by the sender's clock
    event_type: str | None = None  # what its header says it is, when it has one
    trace: Carrier | None = None  # the trace its headers carry on, while tracing


def unwanted(context: str, received: Received, handlers: Mapping[str, Handler], progress: Progress) -> bool:
    """Whether the event's header names a type no handler wants: then it is counted and marked handled, unread."""
    if received.event_type is None or received.event_type in handlers:
        return False
    EVENTS_CONSUMED.labels(context, received.topic, received.event_type).inc()
    progress.handled(received.topic, received.partition, received.offset, received.sent_at)
    return True


async def handle(context: str, received: Received, handlers: Mapping[str, Handler], send: Send,
                 progress: Progress) -> None:
    """Handle one event; events of a type without a handler are counted, nothing more (left undecoded when their
    header names the type)."""
    if unwanted(context, received, handlers, progress):
        return

    async def handling() -> str:
        event = decode(received.value, received.topic)
        correlation.current.set(event.get("correlationId"))
        handler = handlers.get(event["type"])
        if handler is not None:
            await handler(event)
        return event["type"]
    await _handled(context, received, handling, send, progress)


ROW = "row"  # what a change of a table is counted as


async def handle_change(context: str, received: Received, on_change: ChangeHandler, send: Send,
                        progress: Progress) -> None:
    """Handle one change of another context's table, read from its changelog: the row as it now is, or None when
    it was deleted."""
    async def handling() -> str:
        row = None if received.value is None else decode_row(received.value)
        if row is not None:
            correlation.current.set(row.get("correlationId"))
        await on_change(received.key.decode() if received.key else "", row)
        return ROW
    await _handled(context, received, handling, send, progress)


def decode_row(raw: bytes) -> Row:
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(row, dict):
        raise InvalidEvent("a table's row must be a JSON object")
    return row


async def _handled(context: str, received: Received, handling: Callable[[], Awaitable[str]], send: Send,
                   progress: Progress) -> None:
    """Count what `handling` handled; when it fails, dead-letter the message with the reason and go on (a poison
    message never stops a consumer); either way mark it handled. While tracing, the handling is a span of the
    trace that sent the message."""
    with tracing.handling(context, received.topic, received.event_type, received.offset, received.trace):
        try:
            EVENTS_CONSUMED.labels(context, received.topic, await handling()).inc()
        except Exception as exc:  # noqa: BLE001 - a poison message must not stop the consumer
            await send(poisoned(context, received, exc))
    progress.handled(received.topic, received.partition, received.offset, received.sent_at)


def poisoned(context: str, received: Received, exc: Exception) -> Event:
    """Count a message `context` could not handle, log why, and return its dead letter."""
    POISON_EVENTS.labels(context, received.topic).inc()
    log.error("dead-lettered message %s[%s]@%s: %s", received.topic, received.partition, received.offset, exc,
              exc_info=not isinstance(exc, ValueError))  # the message is to blame, not the code
    return dead_letter(context, received.topic, received.partition, received.offset, received.key, received.value,
                       exc)


Check = Callable[[Event], object]  # raises (a ValueError) when an event may not be handled at all


def invalid(context: str, received: Received, checks: Mapping[str, Check]) -> Event | None:
    """The dead letter of a message that could not be handled in any case — not a declared event, or one its
    check refuses — or None when it may be handled."""
    try:
        event = decode(received.value, received.topic)
        check = checks.get(event["type"])
        if check is not None:
            check(event)
    except ValueError as exc:
        return poisoned(context, received, exc)
    return None
