"""`bread dlq`: list the dead letters, and replay them to their topics once what failed them is fixed.

Replaying sends the original message again to its original topic, where every consumer of that topic sees
it again; they are idempotent, so only the one that failed does anything new. Each replay is noted on the
dead-letter topic (as GET /dead-letters notes its own), so a second `--replay` sends only the letters no one
replayed since; those the replayer's consumer group committed past before replays were noted count as replayed.
"""
from __future__ import annotations

from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.correlation import kafka_headers
from agents.deadletters import letters_of, not_replayed, preview
from agents.events import encode, key_of
from agents.runtime import dead_letters
from agents.settings import Settings

REPLAYER_GROUP = "bread-dlq-replayer"


async def list_letters(settings: Settings) -> list[str]:
    letters, replays = letters_of(await dead_letters.read_letters(settings.kafka_bootstrap))
    return [
        f"{offset:>6}  {letter['occurredAt']}  {letter['consumer']:<7} {letter['failedTopic']}"
        f"[{letter['failedPartition']}]@{letter['failedOffset']}  {letter['error']}"
        f"{'  (replayed)' if offset in replays else ''}\n        {preview(letter)}"
        for offset, letter in sorted(letters.items())
    ]


async def _replayed_by_the_group(settings: Settings) -> int:
    """Where the replayer's consumer group had got to, before replays were noted on the topic (0: nowhere)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=REPLAYER_GROUP,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(dead_letters.partitions()[0]) or 0
    finally:
        await consumer.stop()


async def replay(settings: Settings) -> list[str]:
    messages = await dead_letters.read_letters(settings.kafka_bootstrap)
    done_before = await _replayed_by_the_group(settings)
    producer = AIOKafkaProducer(**settings.kafka_producer())
    await producer.start()

    async def send(topic: str, key: bytes | None, value: bytes) -> tuple[int, int]:
        sent = await producer.send_and_wait(topic, key=key, value=value)
        return sent.partition, sent.offset

    async def note(event: dict) -> None:
        await producer.send_and_wait(dead_letters.topic(), key=key_of(event), value=encode(event),
                                     headers=kafka_headers(event))
    replayed = []
    try:
        for offset, letter in not_replayed(messages):
            if offset < done_before:
                continue
            answer = await dead_letters.replay(offset, letter, send, note)
            to = answer["replayedTo"]
            replayed.append(f"{offset:>6}  {to['topic']}[{letter['failedPartition']}]@{letter['failedOffset']} "
                            f"replayed at {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    finally:
        await producer.stop()
    return replayed
