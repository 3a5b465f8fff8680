"""What every consumer of bread does with each message, Faust agent or pay's consumer alike: decode and
check it against topics.yaml, carry its correlation id, hand it to the handler of its type, count it — and
when any of that fails, dead-letter it with the reason and go on (a poison event never stops a consumer) —
then mark it handled for the liveness check."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from agents import correlation
from agents.catalog import InvalidEvent
from agents.deadletters import dead_letter
from agents.events import Event, decode
from agents.runtime.metrics import EVENTS_CONSUMED, POISON_EVENTS, Progress

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
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


async def handle(context: str, received: Received, handlers: Mapping[str, Handler], send: Send,
                 progress: Progress) -> None:
    """Handle one message; events of a type without a handler are counted, nothing more (left undecoded when their
    header names the type)."""
    if received.event_type is not None and received.event_type not in handlers:
        EVENTS_CONSUMED.labels(context, received.topic, received.event_type).inc()
        progress.handled(received.topic, received.partition, received.offset, received.sent_at)
        return
    try:
        event = decode(received.value, received.topic)
        correlation.current.set(event.get("correlationId"))
        handler = handlers.get(event["type"])
        if handler is not None:
            await handler(event)
        EVENTS_CONSUMED.labels(context, received.topic, event["type"]).inc()
    except Exception as exc:  # noqa: BLE001 - a poison event must not stop the consumer
        POISON_EVENTS.labels(context, received.topic).inc()
        log.error("dead-lettered message %s[%s]@%s: %s", received.topic, received.partition, received.offset, exc,
                  exc_info=not isinstance(exc, InvalidEvent))
        await send(dead_letter(context, received.topic, received.partition, received.offset, received.key,
                               received.value, exc))
    progress.handled(received.topic, received.partition, received.offset, received.sent_at)
