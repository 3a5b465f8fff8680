"""The one way bread sends an event outside a Faust agent's stream: to the topic topics.yaml gives its type,
keyed by its order, with its correlation header, acknowledged by every in-sync replica — and only an event
the sending context may produce."""
from __future__ import annotations

from aiokafka import AIOKafkaProducer

from agents.catalog import InvalidEvent, TopicSpec, catalog
from agents.events import Event, encode, key_of
from agents.runtime.metrics import EVENTS_EMITTED
from agents.runtime.tracing import event_headers


def topic_for(context: str, event: Event) -> TopicSpec:
    """The topic of the event's type, once it is sure the context may send it."""
    topic = catalog().topic_of_event(event["type"])
    if context not in topic.producers:
        raise InvalidEvent(f"{context} may not emit {event['type']}: topics.yaml says {topic.producers} do")
    return topic


class Publisher:
    def __init__(self, context: str, producer: AIOKafkaProducer) -> None:
        self.context, self.producer = context, producer

    async def send(self, event: Event) -> int:
        """Send the event and return its offset once the broker has it."""
        topic = topic_for(self.context, event)
        sent = await self.producer.send_and_wait(topic.name, key=key_of(event), value=encode(event),
                                                 headers=event_headers(event))
        EVENTS_EMITTED.labels(self.context, topic.name, event["type"]).inc()
        return sent.offset
