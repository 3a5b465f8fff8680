"""The dead-letter topic as operators use it (`bread dlq`, and the order worker's GET /dead-letters): read whole,
and a letter's original message sent again to its topic, with a note of the replay kept beside the letter
(agents/deadletters.py has the rules)."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.catalog import catalog
from agents.deadletters import Message, original, replay_note
from agents.events import Event

# Sends a message as it was (topic, key, value), acks=all; where it went (partition, offset).
Sender = Callable[[str, bytes | None, bytes], Awaitable[tuple[int, int]]]


def topic() -> str:
    return catalog().topic_of_event("DeadLetter").name


def partitions() -> list[TopicPartition]:
    return [TopicPartition(topic(), p) for p in range(catalog().topic_of_event("DeadLetter").partitions)]


async def read_letters(bootstrap: str) -> list[Message]:
    """Every message on the dead-letter topic, from its first to its last as it is now, read outside any group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        held = partitions()
        consumer.assign(held)
        await consumer.seek_to_beginning(*held)
        ends = await consumer.end_offsets(held)
        messages: list[Message] = []
        while [tp for tp in held if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(*held, timeout_ms=1000)).values():
                messages.extend((m.offset, orjson.loads(m.value)) for m in batch)
        return messages
    finally:
        await consumer.stop()


async def replay(letter_offset: int, letter: dict[str, Any], send: Sender, note: Callable[[Event], Awaitable[Any]],
                 by: str | None = None) -> dict[str, Any]:
    """Send the letter's original message again to its topic, then note the replay on the dead-letter topic;
    where it went. Its consumers are idempotent: only the one that failed on it does anything new, and if it
    fails again, a new letter says so."""
    failed_topic, key, value = original(letter)
    partition, offset = await send(failed_topic, key, value)
    await note(replay_note(letter_offset, letter, failed_topic, partition, offset, by))
    return {"id": letter_offset, "replayedTo": {"topic": failed_topic, "partition": partition, "offset": offset}}
