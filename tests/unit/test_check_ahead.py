"""The request log read ahead of its handling: an invalid request is dead-lettered when it is read, once."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
from aiokafka.errors import KafkaConnectionError

from agents.order.menu import parse_order
from agents.runtime.check_ahead import CheckAhead
from agents.runtime.consuming import Received, invalid

TOPIC = "bread.order-requests"
MENU = {"cake": 25000}
CHECKS = {"RequestOrder": lambda command: parse_order(command, MENU)}


def request(offset: int, qty: int, partition: int = 0) -> Received:
    value = orjson.dumps({"type": "RequestOrder", "requestId": f"r{offset}", "item": "cake", "qty": qty})
    return Received(TOPIC, partition, offset, f"r{offset}".encode(), value)


def reader(taken: dict[int, int], sent: list[dict], refuse: bool = False) -> CheckAhead:
    async def send(letter: dict) -> None:
        if refuse:
            raise KafkaConnectionError("the broker is away")
        sent.append(letter)

    async def reading_from(partition: int) -> int | None:
        return taken.get(partition)
    return CheckAhead(TOPIC, consumer=lambda: None, held=lambda: {0}, taken=taken.get, reading_from=reading_from,
                      invalid=lambda received: invalid("order", received, CHECKS),
                      send=send)


async def test_an_invalid_request_read_ahead_is_dead_lettered_once_at_once():
    sent: list[dict] = []
    ahead = reader({0: 10}, sent)
    ahead.read(request(40, qty=0))
    ahead.read(request(41, qty=1))  # valid: left to its turn
    assert await ahead.dealt_with(request(40, qty=0)) is True
    assert [(s["failedOffset"], s["consumer"]) for s in sent] == [(40, "order")]
    assert "'qty' must be between" in sent[0]["error"]
    assert await ahead.dealt_with(request(41, qty=1)) is False  # valid: the handling places it


async def test_a_request_the_handling_has_taken_in_already_is_left_to_it():
    sent: list[dict] = []
    ahead = reader({0: 50}, sent)
    ahead.read(request(40, qty=0))
    assert ahead.letters == {}  # no letter on its way: the handling dead-letters it in its turn


async def test_a_letter_that_could_not_be_sent_ahead_is_left_for_the_handling_to_send_in_turn():
    ahead = reader({}, [], refuse=True)
    ahead.read(request(3, qty=0))
    assert await ahead.dealt_with(request(3, qty=0)) is False


class Consumer:
    """aiokafka's consumer as the reader ahead uses it, over a list of messages; the first one made fails."""

    made = 0

    def __init__(self, messages: list[Received]) -> None:
        Consumer.made += 1
        self.failing = Consumer.made == 1
        self.messages = messages
        self.assigned: list = []
        self.sought: dict[int, int] = {}

    async def start(self) -> None:
        if self.failing:
            raise KafkaConnectionError("the broker is away")

    async def stop(self) -> None:
        pass

    def assign(self, partitions: list) -> None:
        self.assigned = partitions

    def seek(self, tp, offset: int) -> None:
        self.sought[tp.partition] = offset

    async def getmany(self, timeout_ms: int) -> dict:
        batch = [SimpleNamespace(topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                                 timestamp=0) for r in self.messages if r.offset >= self.sought[r.partition]]
        self.messages = []
        if not batch:
            await asyncio.Event().wait()  # nothing more: a long poll that never returns, until cancelled
        return {0: batch}


async def test_a_reader_ahead_whose_consumer_failed_goes_on_with_another():
    sent: list[dict] = []
    letter_sent = asyncio.Event()

    async def send(letter: dict) -> None:
        sent.append(letter)
        letter_sent.set()

    async def reading_from(partition: int) -> int:
        return 5
    Consumer.made = 0
    messages = [request(4, qty=0), request(5, qty=0), request(6, qty=1)]
    ahead = CheckAhead(TOPIC, consumer=lambda: Consumer(messages), held=lambda: {0}, taken=lambda p: None,
                       reading_from=reading_from, invalid=lambda received: invalid("order", received, CHECKS),
                       send=send, retry_s=0)
    reading = asyncio.create_task(ahead.run())
    await asyncio.wait_for(letter_sent.wait(), 2)
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    assert await ahead.dealt_with(request(5, qty=0)) is True
    assert Consumer.made == 2 and [letter["failedOffset"] for letter in sent] == [5]  # 4: before the handling's place
