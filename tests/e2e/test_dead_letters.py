"""Poison messages go to the dead-letter topic and never stop an agent; `bread dlq` lists and replays them."""
from __future__ import annotations

import random

from agents.catalog import catalog
from agents.deadletters import dead_letter
from agents.events import encode, key_of, make_event
from tests.e2e.conftest import bread, eventually, mypage, place, produce, until_status


async def test_poison_messages_are_dead_lettered_without_stopping_the_saga(system, kafka):
    orders = catalog().topic_of_event("OrderPlaced").name
    garbage = await produce(kafka, orders, b"424242", b"\x00 not json at all")
    lacking = make_event("OrderPlaced", correlation_id="poison", orderId=424243, item="cake", qty=1, price=1)
    del lacking["price"]
    invalid = await produce(kafka, orders, b"424243", encode(lacking))

    consumers = catalog().topic_of_event("OrderPlaced").consumers
    wanted = [f"{context:<7} {orders}[{p}]@{o}" for context in consumers for p, o in (garbage, invalid)]

    async def all_dead_lettered():
        listing = await bread(system, "dlq")
        return listing if all(w in listing for w in wanted) else None

    listing = await eventually(all_dead_lettered, what="every consumer of the orders topic dead-lettered both")
    assert "not JSON" in listing and "lacks price" in listing

    order = await place(system, via="gateway")
    await until_status(system, order["id"], "Confirming")


async def test_a_replayed_dead_letter_reaches_its_consumers(system, kafka):
    order_id = random.randint(20_000_001, 30_000_000)
    placed = make_event("OrderPlaced", correlation_id="replayed", orderId=order_id, item="bread", qty=2, price=6000)
    orders = catalog().topic_of_event("OrderPlaced").name
    letter = dead_letter("mypage", orders, 0, 0, key_of(placed), encode(placed), RuntimeError("a bug since fixed"))
    _, offset = await produce(kafka, catalog().topic_of_event("DeadLetter").name, None, encode(letter))

    replayed = await bread(system, "dlq", "--replay")
    assert f"{offset:>6}  {orders}" in replayed

    async def shown():
        row = await mypage(system, order_id)
        return row if row and row["item"] == "bread" else None

    row = await eventually(shown, what="the replayed order on mypage")
    assert (row["qty"], row["price"]) == (2, 6000)


async def test_an_operator_finds_a_dead_letter_over_http_and_replays_it_once_fixed(system, kafka):
    order_id = random.randint(30_000_001, 40_000_000)
    placed = make_event("OrderPlaced", correlation_id="replayed-over-http", orderId=order_id, item="bread", qty=3,
                        price=9000)
    orders = catalog().topic_of_event("OrderPlaced").name
    letter = dead_letter("mypage", orders, 1, 7, key_of(placed), encode(placed), RuntimeError("a bug since fixed"))
    _, offset = await produce(kafka, catalog().topic_of_event("DeadLetter").name, None, encode(letter))
    gateway = system.url("gateway")

    async def listed() -> dict | None:
        _, listing, _ = await system.request("GET", f"{gateway}/dead-letters", params={"size": "200"})
        return next((found for found in listing["letters"] if found["id"] == offset), None)
    shown = await eventually(listed, what="the letter listed")
    assert (shown["consumer"], shown["topic"], shown["partition"], shown["offset"]) == ("mypage", orders, 1, 7)
    assert shown["error"] == "RuntimeError: a bug since fixed" and shown["replays"] == []
    assert str(order_id) in shown["value"]  # the message, as text

    status, replayed, _ = await system.request("POST", f"{gateway}/dead-letters/{offset}/replay")
    assert status == 200 and replayed["replayedTo"]["topic"] == orders, replayed

    async def on_mypage() -> dict | None:
        row = await mypage(system, order_id)
        return row if row and row["item"] == "bread" else None
    assert (await eventually(on_mypage, what="the replayed order on mypage"))["qty"] == 3
    again = await eventually(listed, what="the letter listed again")
    assert [r["offset"] for r in again["replays"]] == [replayed["replayedTo"]["offset"]]
    # `bread dlq` sees the replay too: it lists the letter as replayed and does not send it again.
    listing = await bread(system, "dlq")
    assert "(replayed)" in next(line for line in listing.splitlines() if line.startswith(f"{offset:>6}  "))
    assert f"{offset:>6}  " not in await bread(system, "dlq", "--replay")
