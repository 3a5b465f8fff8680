"""Every way an order can end besides Confirmed, end to end: the bakery refuses, the customer cancels, pay
declines, the saga deadline passes. Whatever the path, no order stays charged unless it is Confirmed."""
from __future__ import annotations

import json
import random

from aiokafka import AIOKafkaProducer

from agents.catalog import catalog
from agents.events import encode, key_of, make_event
from tests.e2e.conftest import (
    SAGA_DEADLINE_S,
    SAGA_REPAIR_S,
    System,
    books,
    confirm,
    eventually,
    mypage,
    place,
    until_status,
)


async def ended_as(system: System, order_id: int, status: str, timeout: float = 30) -> dict:
    async def ended():
        row = await mypage(system, order_id, via="gateway")
        return row if row and row["status"] == status else None

    return await eventually(ended, timeout, f"order {order_id} {status} on mypage")


async def test_a_bakery_rejection_ends_the_order_cancelled_with_its_money_back(system):
    order = await place(system, via="gateway")
    await until_status(system, order["id"], "Confirming")
    status, ticket, _ = await system.request("POST", f"{system.url('gateway')}/bakeries",
                                             json={"orderId": order["id"], "status": "Rejected", "reason": "no flour"})
    assert status == 200 and ticket["status"] == "Rejected"
    row = await ended_as(system, order["id"], "Cancelled")
    assert row["reason"] == "rejected by the bakery: no flour" and row["action"] == "cancel"
    assert {"BakeryRejected", "PayCanceled"} <= {step["event"] for step in row["history"]}
    assert await books(system, order["id"]) == {"charged": 25000, "refunded": 25000}
    status, body, _ = await system.request("POST", f"{system.url('bakery')}/bakeries",
                                           json={"orderId": order["id"], "status": "Confirmed"})
    assert status == 409 and "Rejected" in body["error"]


async def test_a_customer_cancel_ends_with_the_money_back(system):
    order = await place(system, via="gateway")
    await until_status(system, order["id"], "Confirming")
    status, body, _ = await system.request("DELETE", f"{system.url('gateway')}/orders/{order['id']}")
    assert status == 202 and body["status"] == "Cancelling"
    row = await ended_as(system, order["id"], "Cancelled")
    assert row["reason"] == "cancelled by the customer"
    assert {"OrderCancelled", "BakeryTicketClosed", "PayCanceled"} <= {step["event"] for step in row["history"]}
    assert await books(system, order["id"]) == {"charged": 25000, "refunded": 25000}
    _, ticket, _ = await system.request("GET", f"{system.url('bakery')}/bakeries/{order['id']}")
    assert ticket["status"] == "Closed"
    # Mypage and the order worker fold the same events each at its own pace: the edge asks the order worker.
    await until_status(system, order["id"], "Cancelled")
    status, body, _ = await system.request("DELETE", f"{system.url('order')}/orders/{order['id']}")
    assert status == 409 and "Cancelled" in body["error"]


async def test_a_confirmed_order_cannot_be_cancelled(system):
    order = await place(system)
    await until_status(system, order["id"], "Confirming")
    await confirm(system, order["id"])
    await until_status(system, order["id"], "Confirmed")
    status, body, _ = await system.request("DELETE", f"{system.url('gateway')}/orders/{order['id']}")
    assert status == 409 and "confirmed" in body["error"] and body["status"] == "Confirmed"
    status, body, _ = await system.request("DELETE", f"{system.url('gateway')}/orders/999999")
    assert status == 404 and "error" in body
    assert await books(system, order["id"]) == {"charged": 25000, "refunded": 0}


async def test_a_charge_over_the_limit_fails_the_order_without_taking_money(system):
    status, body, _ = await system.request("POST", f"{system.url('gateway')}/orders", json={"item": "cake", "qty": 50})
    assert status == 402 and body["status"] == "PaymentFailed" and "limit" in body["error"]
    row = await ended_as(system, body["orderId"], "PaymentFailed")
    assert row["action"] == "decline" and "limit" in row["reason"]
    assert await books(system, body["orderId"]) == {"charged": 0, "refunded": 0}


async def test_an_order_the_baker_never_answers_is_cancelled_at_its_deadline(system):
    order = await place(system)
    await until_status(system, order["id"], "Confirming")
    row = await ended_as(system, order["id"], "Cancelled", timeout=SAGA_DEADLINE_S + 30)
    assert row["reason"] == "saga deadline passed"
    assert await books(system, order["id"]) == {"charged": 25000, "refunded": 25000}


async def test_an_order_whose_edge_died_before_charging_it_is_cancelled_at_its_deadline(system, kafka):
    # What an edge leaves behind when it dies between announcing the order and calling pay.
    order_id = random.randint(10_000_000, 20_000_000)
    placed = make_event("OrderPlaced", correlation_id="edge-died", orderId=order_id, item="cake", qty=1, price=25000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(catalog().topic_of_event("OrderPlaced").name, key=key_of(placed),
                                     value=encode(placed))
    finally:
        await producer.stop()
    row = await ended_as(system, order_id, "Cancelled", timeout=SAGA_DEADLINE_S + 30)
    assert row["action"] == "void" and row["reason"] == "saga deadline passed"
    assert await books(system, order_id) == {"charged": 0, "refunded": 0}
    status, body, _ = await system.request(
        "POST", f"{system.url('pay')}/payments", json={"orderId": order_id, "price": 25000, "action": "apply"})
    assert status == 409 and "not charged" in body["error"], json.dumps(body)


async def test_an_order_stuck_cancelling_ends_once_pay_is_back(system):
    order = await place(system)
    await until_status(system, order["id"], "Confirming")
    system.stop("pay")  # nobody refunds: the cancel cannot end
    try:
        status, _, _ = await system.request("DELETE", f"{system.url('gateway')}/orders/{order['id']}")
        assert status == 202

        async def stalled():
            row = await mypage(system, order["id"], via="gateway")
            steps = [step["event"] for step in (row or {}).get("history", [])]
            return row if "OrderStalled" in steps else None

        row = await eventually(stalled, SAGA_REPAIR_S + 30, f"order {order['id']} announced stalled")
        assert row["status"] == "Cancelling"
        # The operators find it among the sagas stuck cancelling, stalled, with its repair due.
        status, listing, _ = await system.request("GET", f"{system.url('gateway')}/sagas",
                                                  params={"status": "Cancelling", "size": "1000"})
        assert status == 200, listing
        saga = next(s for s in listing["unfinished"] if s["orderId"] == order["id"])
        assert saga["stalled"] and saga["next"]["then"] == "repair" and saga["lastEvent"]["event"] in {
            "OrderStalled", "OrderCancelled", "BakeryTicketClosed"}
        assert listing["counts"]["Cancelling"] >= 1
    finally:
        system.start("pay")
        await system.wait_ready("pay")
    row = await ended_as(system, order["id"], "Cancelled")
    assert row["reason"] == "cancelled by the customer"
    assert await books(system, order["id"]) == {"charged": 25000, "refunded": 25000}
