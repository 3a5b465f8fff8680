"""A log of requests from outside bread, read ahead of its handling: an invalid request is dead-lettered as soon as
it arrives, not when its turn comes behind every valid one in front of it (a partner's burst would otherwise keep
the sender waiting minutes to learn of a typo).

The worker's group holds the log's partitions and handles them in order; beside it, a consumer of its own (in no
group) reads the same partitions from where the handling has got to, to the end, and checks each request. The one
that reaches a request first deals with it: what the reader ahead dead-lettered, the handling acknowledges once
the letter is on Kafka, and handles itself when the letter could not be sent. After a crash the reader reads
again from where the handling is, so a letter may be sent twice — with the same id, derived from the message's
place (agents/deadletters.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agents.events import Event
from agents.runtime.consuming import Received

log = logging.getLogger(__name__)

Place = tuple[int, int]  # (partition, offset)


class CheckAhead:
    def __init__(self, topic: str, consumer: Callable[[], AIOKafkaConsumer], held: Callable[[], set[int]],
                 taken: Callable[[int], int | None], reading_from: Callable[[int], Awaitable[int | None]],
                 invalid: Callable[[Received], Event | None], send: Callable[[Event], Awaitable[Any]],
                 retry_s: float = 1.0) -> None:
        """`held()`: the partitions of `topic` the worker holds now; `taken(partition)`: the offset its handling
        has taken requests in up to (None when it took none yet); `reading_from(partition)`: where the worker reads
        a partition from (None when not known yet); `invalid(received)`: the dead letter of a request that can
        never be handled, or None."""
        self.topic = topic
        self._new_consumer, self._held, self._taken, self._reading_from = consumer, held, taken, reading_from
        self._invalid, self._send, self._retry_s = invalid, send, retry_s
        self.letters: dict[Place, asyncio.Task] = {}  # dead letters sent ahead, until the handling reaches them
        self._next: dict[int, int] = {}  # partition -> the next offset to read ahead

    async def dealt_with(self, received: Received) -> bool:
        """Whether this request was dead-lettered ahead and its letter is on Kafka; False when it was not, or the
        letter could not be sent (the handling then deals with it in its turn)."""
        letter = self.letters.pop((received.partition, received.offset), None)
        if letter is None:
            return False
        try:
            await letter
        except KafkaError as exc:
            log.warning("the dead letter for %s[%s]@%s sent ahead failed (%s): handled in turn", self.topic,
                        received.partition, received.offset, exc)
            return False
        return True

    def read(self, received: Received) -> None:
        """Check one request read ahead, unless the handling has it already."""
        taken = self._taken(received.partition)
        if taken is not None and received.offset < taken:
            return
        letter = self._invalid(received)
        if letter is not None:
            self.letters[(received.partition, received.offset)] = asyncio.create_task(self._send(letter))

    async def run(self) -> None:
        """Read ahead until cancelled, following the partitions the worker holds. A consumer that fails (the
        broker away) is made again after `retry_s`; meanwhile the placing dead-letters in its turn."""
        while True:
            try:
                await self._read_ahead()
            except KafkaError as exc:
                log.warning("reading %s ahead stopped (%s); again in %.1f s", self.topic, exc, self._retry_s)
                self._next = {}
                await asyncio.sleep(self._retry_s)  # a back-off before the next consumer

    async def _read_ahead(self) -> None:
        consumer = self._new_consumer()
        await consumer.start()
        try:
            while True:
                await self._follow_assignment(consumer)
                if not self._next:
                    await asyncio.sleep(1.0)  # reading none of the log yet: look again in a while
                    continue
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    for message in batch:
                        self._next[message.partition] = message.offset + 1
                        self.read(Received(message.topic, message.partition, message.offset, message.key,
                                                 message.value, message.timestamp / 1000))
        finally:
            await consumer.stop()

    async def _follow_assignment(self, consumer: AIOKafkaConsumer) -> None:
        held = self._held()
        if held == set(self._next):
            return
        for place in [place for place in self.letters if place[0] not in held]:
            del self.letters[place]  # another worker handles that partition now, and checks it itself
        starts = {p: self._next[p] if p in self._next else await self._reading_from(p) for p in held}
        starts = {p: start for p, start in starts.items() if start is not None}  # the others: next time round
        consumer.assign([TopicPartition(self.topic, p) for p in starts])
        for partition, start in starts.items():
            consumer.seek(TopicPartition(self.topic, partition), start)
        self._next = starts
        log.info("checking the requests on %s ahead, partitions %s", self.topic, sorted(starts))
