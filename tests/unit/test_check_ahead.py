"""The request log read ahead of its handling: an invalid request is dead-lettered when it is read, once."""
from __future__ import annotations

import asyncio

import orjson

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
            raise ConnectionError("the broker is away")
        sent.append(letter)

    async def reading_from(partition: int) -> int | None:
        return taken.get(partition)
    return CheckAhead(TOPIC, consumer=lambda: None, held=lambda: {0}, taken=taken.get, reading_from=reading_from,
                      invalid=lambda received: invalid("order", received, CHECKS),
                      send=send)


async def test_an_invalid_request_read_ahead_is_dead_lettered_at_once_and_the_handling_takes_the_letter_over():
    sent: list[dict] = []
    ahead = reader({0: 10}, sent)
    ahead.read(request(40, qty=0))
    ahead.read(request(41, qty=1))  # valid: left to its turn
    letter = ahead.sent_ahead(0, 40)
    await letter
    assert [(s["failedOffset"], s["consumer"]) for s in sent] == [(40, "order")]
    assert "'qty' must be between" in sent[0]["error"]
    assert ahead.sent_ahead(0, 40) is None and ahead.sent_ahead(0, 41) is None


async def test_a_request_the_handling_has_taken_in_already_is_left_to_it():
    sent: list[dict] = []
    ahead = reader({0: 50}, sent)
    ahead.read(request(40, qty=0))
    await asyncio.sleep(0)
    assert sent == [] and ahead.sent_ahead(0, 40) is None


async def test_a_letter_that_could_not_be_sent_ahead_is_left_for_the_handling_to_send_in_turn():
    ahead = reader({}, [], refuse=True)
    ahead.read(request(3, qty=0))
    letter = ahead.sent_ahead(0, 3)
    try:
        await letter
    except ConnectionError:
        pass
    assert letter.done() and isinstance(letter.exception(), ConnectionError)
