"""Other systems place orders by producing to Kafka: same checks, same saga, idempotent by request id."""
from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaProducer

from agents.catalog import InvalidEvent, catalog
from agents.events import decode
from agents.order.intake import is_placed
from tests.e2e.conftest import (
    System,
    books,
    bread,
    confirm,
    confirmed_row,
    events_of,
    eventually,
    read_all,
    until_status,
)


async def send_plain(kafka: str, requests: list[dict]) -> None:
    """As any other system would: a plain producer, JSON values, the request id as key. No bread code."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send("bread.order-requests", key=request["requestId"].encode(),
                                    value=json.dumps(request).encode()) for request in requests]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def placed_order(system: System, request_id: str) -> dict | None:
    status, body, _ = await system.request("GET", f"{system.url('gateway')}/order-requests/{request_id}")
    return body if status == 200 else None


async def test_an_order_requested_over_kafka_runs_the_saga_once_however_often_it_is_sent(system, kafka):
    assert catalog().topic_of_event("RequestOrder").name == "bread.order-requests"  # the name the README gives
    request = {"type": "RequestOrder", "requestId": f"req-{uuid.uuid4().hex}", "item": "baguette", "qty": 3,
               "correlationId": f"partner-{uuid.uuid4().hex}"}
    bad = {"type": "RequestOrder", "requestId": f"req-{uuid.uuid4().hex}", "item": "baguette", "qty": 0}
    await send_plain(kafka, [request, bad, request])

    async def charged() -> dict | None:  # recorded first as Ordered (its number reserved), then as charged
        row = await placed_order(system, request["requestId"])
        return row if is_placed(row) else None

    placed = await eventually(charged, what="the requested order placed")
    assert placed["status"] == "Paid"
    order_id = placed["orderId"]
    await until_status(system, order_id, "Confirming")
    await confirm(system, order_id)
    row = await eventually(lambda: confirmed_row(system, order_id), what="the requested order confirmed")
    assert (row["item"], row["qty"], row["price"]) == ("baguette", 3, 13500)

    events = await events_of(kafka, order_id)
    # Seen again, the request announced its placement again: the very same event, which consumers drop.
    assert len({e["eventId"] for e, _ in events if e["type"] == "OrderPlaced"}) == 1
    assert {e["correlationId"] for e, _ in events} == {request["correlationId"]}
    sent_twice = await eventually(lambda: _placed_orders(kafka, request["correlationId"]), what="placements")
    assert set(sent_twice) == {order_id}, "the re-sent request placed a second order"

    listing = await eventually(lambda: _letter_for(system, bad["requestId"]), what="the invalid request dead-lettered")
    assert "'qty' must be between 1 and" in listing
    assert await placed_order(system, bad["requestId"]) is None


async def _placed_orders(kafka: str, correlation: str) -> list[int]:
    name = catalog().topic_of_event("OrderPlaced").name
    placed = []
    for message in await read_all(kafka, [name]):
        try:
            event = decode(message.value, name)
        except InvalidEvent:
            continue  # the poison other tests put there
        if event["type"] == "OrderPlaced" and event["correlationId"] == correlation:
            placed.append(event["orderId"])
    return placed


async def _letter_for(system: System, request_id: str) -> str | None:
    listing = await bread(system, "dlq")
    lines = listing.splitlines()
    found = [lines[i - 1] + lines[i] for i in range(1, len(lines)) if request_id in lines[i]]
    return found[0] if found else None


async def test_an_idempotency_key_places_one_order_however_often_it_is_posted(system):
    key = f"basket-{uuid.uuid4().hex}"
    posted = [await system.request("POST", f"{system.url(via)}/orders", json={"item": "cake", "qty": 2},
                                   headers={"Idempotency-Key": key}) for via in ("gateway", "order", "gateway")]
    statuses = [status for status, _, _ in posted]
    assert statuses == [201, 201, 201], [body for _, body, _ in posted]
    assert len({body["id"] for _, body, _ in posted}) == 1
    assert posted[0][1] == {"id": posted[0][1]["id"], "item": "cake", "qty": 2, "status": "Paid", "price": 50000}
    status, body, _ = await system.request("POST", f"{system.url('gateway')}/orders", json={"item": "cake", "qty": 3},
                                           headers={"Idempotency-Key": key})
    assert status == 422 and "another order" in body["error"]
    status, body, _ = await system.request("POST", f"{system.url('gateway')}/orders", json={"item": "cake"},
                                           headers={"Idempotency-Key": "a/b"})
    assert status == 400 and "Idempotency-Key" in body["error"]

    payment = {"orderId": posted[0][1]["id"], "price": 50000, "action": "apply"}
    first = await system.request("POST", f"{system.url('pay')}/payments", json=payment,
                                 headers={"Idempotency-Key": f"pay-{key}"})
    other = await system.request("POST", f"{system.url('pay')}/payments", json={**payment, "action": "cancel"},
                                 headers={"Idempotency-Key": f"pay-{key}"})
    assert first[0] == 200 and first[1]["action"] == "apply"  # the charge made when the order was placed
    assert other[0] == 422


async def test_a_burst_of_requests_is_placed_side_by_side_each_once(
        system, kafka):
    burst = [{"type": "RequestOrder", "requestId": f"burst-{uuid.uuid4().hex}", "item": "bread", "qty": 1 + i % 3}
             for i in range(300)]
    invalid = [{"type": "RequestOrder", "requestId": f"burst-bad-{uuid.uuid4().hex}", "item": "stone", "qty": 1}
               for _ in range(3)]
    await send_plain(kafka, burst + burst + invalid)  # every request sent twice, the invalid ones behind them all

    async def backlog() -> dict:
        _, pipeline, _ = await system.request("GET", f"{system.url('order-worker')}/pipeline")
        return pipeline["requests"]
    assert set(await backlog()) == {"waiting", "underWay", "behindS"}

    async def all_placed() -> list[dict] | None:
        rows = [await placed_order(system, r["requestId"]) for r in burst]
        return rows if all(is_placed(row) for row in rows) else None
    rows = await eventually(all_placed, timeout=60, what="every request of the burst placed")
    # Paid, or, where pay could not answer within its short deadline on a slow machine, rejected for that
    # and charged nothing (a charge pay recorded too late is refunded).
    assert {row["status"] for row in rows} <= {"Paid", "Rejected"}
    for row in rows:
        if row["status"] == "Rejected":
            assert row["reason"].startswith("payment unavailable"), row
            await eventually(lambda row=row: _nothing_kept(system, row["orderId"]), what="a rejected order refunded")
    assert [(row["item"], row["qty"]) for row in rows] == [(r["item"], r["qty"]) for r in burst]
    assert len({row["orderId"] for row in rows}) == len(burst)  # one order each, sent twice or not
    for request in invalid:
        listing = await eventually(lambda request=request: _letter_for(system, request["requestId"]),
                                   what="an invalid request dead-lettered")
        assert "'stone' is not on the menu" in listing
    await eventually(lambda: _idle(backlog), what="the request log caught up")


async def _nothing_kept(system: System, order_id: int) -> bool:
    money = await books(system, order_id)
    return money["charged"] == money["refunded"]


async def _idle(backlog) -> bool:
    requests = await backlog()
    return requests["underWay"] == 0 and requests["waiting"] == 0
