"""`bread dlq`: list the dead letters, and replay them to their topics once what failed them is fixed.

Replaying sends the original message again to its original topic, where every consumer of that topic sees
it again; they are idempotent, so only the one that failed does anything new. A consumer group remembers
which letters were replayed, so a second `--replay` sends only newer ones.
"""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.catalog import catalog
from agents.deadletters import original, preview
from agents.settings import Settings

REPLAYER_GROUP = "bread-dlq-replayer"


def _topic() -> str:
    return catalog().topic_of_event("DeadLetter").name


async def _letters(consumer: AIOKafkaConsumer) -> list[tuple[int, dict]]:
    """Every letter from the consumer's position up to the end of the topic as it is now."""
    partitions = [TopicPartition(_topic(), p) for p in consumer.partitions_for_topic(_topic()) or []]
    ends = await consumer.end_offsets(partitions)
    letters = []
    while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
        batches = await consumer.getmany(timeout_ms=1000)
        for message in (m for batch in batches.values() for m in batch):
            letters.append((message.offset, json.loads(message.value)))
    return letters


async def list_letters(settings: Settings) -> list[str]:
    consumer = AIOKafkaConsumer(_topic(), bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.seek_to_beginning()
        letters = await _letters(consumer)
    finally:
        await consumer.stop()
    return [
        f"{offset:>6}  {letter['occurredAt']}  {letter['consumer']:<7} {letter['failedTopic']}"
        f"[{letter['failedPartition']}]@{letter['failedOffset']}  {letter['error']}\n        {preview(letter)}"
        for offset, letter in letters
    ]


async def replay(settings: Settings) -> list[str]:
    consumer = AIOKafkaConsumer(_topic(), bootstrap_servers=settings.kafka_bootstrap, group_id=REPLAYER_GROUP,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(**settings.kafka_producer())
    await consumer.start()
    await producer.start()
    replayed = []
    try:
        # Joining the group assigns the partition; wait for that rather than for a guessed time.
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        for offset, letter in await _letters(consumer):
            topic, key, value = original(letter)
            await producer.send_and_wait(topic, key=key, value=value)
            replayed.append(f"{offset:>6}  {topic}[{letter['failedPartition']}]@{letter['failedOffset']} replayed "
                            f"at {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed
