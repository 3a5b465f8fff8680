"""The seed's flow and its failure cases, end to end against the real broker and every service."""
from __future__ import annotations

import signal

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from agents.catalog import catalog
from agents.order.intake import NUMBERS_PER_RESERVATION
from tests.e2e.conftest import CAKE, System, confirm, confirmed_row, eventually, mypage, mypage_row, place, until_status


async def test_an_order_runs_the_saga_to_confirmed_on_mypage(system):
    order = await place(system)
    assert {k: order[k] for k in ("item", "qty", "status", "price")} == {
        "item": "cake", "qty": 1, "status": "Paid", "price": 25000}
    await until_status(system, order["id"], "Confirming")

    async def ticket_saying_what_to_bake() -> dict | None:
        status, ticket, _ = await system.request("GET", f"{system.url('bakery')}/bakeries/{order['id']}")
        return ticket if status == 200 and ticket.get("item") else None
    shown = await eventually(ticket_saying_what_to_bake, what="the ticket saying what to bake")
    assert (shown["item"], shown["qty"]) == ("cake", 1)
    ticket = await confirm(system, order["id"])
    assert ticket["status"] == "Confirmed"
    await until_status(system, order["id"], "Confirmed")

    row = await eventually(lambda: confirmed_row(system, order["id"]), what="the mypage row confirmed")
    assert (row["price"], row["item"], row["qty"], row["action"]) == (25000, "cake", 1, "apply")
    assert row["paymentId"] and row["bakeryId"] == ticket["bakeryId"]
    story = row["history"]
    assert sorted(step["event"] for step in story) == sorted(
        ["OrderPlaced", "PayApproved", "BakeryTicketOpened", "BakeryConfirmed"])
    assert [step["at"] for step in story] == sorted(step["at"] for step in story)
    assert story[0]["event"] == "OrderPlaced" and story[-1]["event"] == "BakeryConfirmed"

    status, listing, _ = await system.request("GET", f"{system.url('mypage')}/mypages?size=1000")
    assert status == 200
    rows = {r["orderId"]: r for r in listing["_embedded"]["mypages"]}
    assert rows[order["id"]]["status"] == "Confirmed"
    assert rows[order["id"]]["_links"]["self"]["href"].endswith(f"/mypages/{order['id']}")
    assert listing["_links"]["self"]["href"]


async def test_the_same_flow_through_the_gateway(system):
    order = await place(system, via="gateway")
    await until_status(system, order["id"], "Confirming", via="gateway")
    await confirm(system, order["id"], via="gateway")
    await until_status(system, order["id"], "Confirmed", via="gateway")
    _, direct, _ = await system.request("GET", f"{system.url('order')}/orders/{order['id']}")
    _, routed, _ = await system.request("GET", f"{system.url('gateway')}/orders/{order['id']}")
    assert routed == direct
    row = await eventually(lambda: confirmed_row(system, order["id"]), what="mypage row via gateway")
    via_gateway = await mypage(system, order["id"], via="gateway")
    assert via_gateway["status"] == "Confirmed" and via_gateway["price"] == row["price"] == 25000
    assert via_gateway["_links"]["self"]["href"] == f"{system.url('gateway')}/mypages/{order['id']}"
    status, listing, _ = await system.request("GET", f"{system.url('gateway')}/mypages")
    assert status == 200 and "mypages" in listing["_embedded"]


@pytest.mark.parametrize(
    "body, problem",
    [
        (b'{"item": "cake", "qty": 0}', "qty"),
        (b'{"item": "pizza", "qty": 1}', "not on the menu"),
        (b'{"item": "cake", "qty": ', "not valid JSON"),
        (b'["cake"]', "JSON object"),
        (b"", "not valid JSON"),
    ],
)
async def test_a_bad_order_gets_400_with_a_json_reason(system, body, problem):
    before = await place(system)
    await _refused(system, body, problem)
    after = await place(system)
    assert _follows(before["id"], after["id"]), f"the bad request took a number: {before['id']}, then {after['id']}"


async def test_a_bad_order_after_the_last_number_of_a_block_takes_none_of_the_next(system):
    placed = [await place(system)]
    while placed[-1]["id"] % NUMBERS_PER_RESERVATION and len(placed) <= NUMBERS_PER_RESERVATION:
        placed.append(await place(system))
    assert placed[-1]["id"] % NUMBERS_PER_RESERVATION == 0, "a block's worth of orders never reached its last number"
    await _refused(system, b'{"item": "cake", "qty": 0}', "qty")
    after = await place(system)
    assert after["id"] % NUMBERS_PER_RESERVATION == 1, f"the bad request took a number of {after['id']}'s block"


async def _refused(system: System, body: bytes, problem: str) -> None:
    status, error, _ = await system.request(
        "POST", f"{system.url('gateway')}/orders", data=body, headers={"Content-Type": "application/json"})
    assert status == 400 and problem in error["error"]


def _follows(taken: int, seen: int) -> bool:
    """Whether `seen` is the number an edge hands out right after `taken`: the next in its block, or past the
    block's last, the first of whichever block it reserves next (a bad request given a number would take that)."""
    if taken % NUMBERS_PER_RESERVATION:
        return seen == taken + 1
    return seen > taken and seen % NUMBERS_PER_RESERVATION == 1


async def test_unknown_or_malformed_ids_get_json_errors(system):
    for path in ("/mypages/999999", "/orders/999999", "/bakeries/999999"):
        status, body, _ = await system.request("GET", f"{system.url('gateway')}{path}")
        assert status == 404 and "error" in body, path
    status, body, _ = await system.request("GET", f"{system.url('gateway')}/orders/abc")
    assert status == 400 and "error" in body
    status, body, _ = await system.request("GET", f"{system.url('gateway')}/kitchen")
    assert status == 404 and "no route" in body["error"]
    status, body, _ = await system.request(
        "POST", f"{system.url('gateway')}/bakeries", json={"orderId": 999999, "status": "Confirmed"})
    assert status == 404 and "no bakery ticket" in body["error"]
    status, body, _ = await system.request(
        "POST", f"{system.url('gateway')}/bakeries", json={"orderId": 1, "status": "Baked"})
    assert status == 400 and "status" in body["error"]


async def test_with_pay_down_an_order_is_rejected_at_once(system):
    system.stop("pay")
    try:
        status, body, _ = await system.request("POST", f"{system.url('gateway')}/orders", json=CAKE)
        assert status == 503
        assert body["status"] == "Rejected" and "pay" in body["error"]
        row = await eventually(lambda: _row_with_status(system, body["orderId"], "Rejected"), what="rejected row")
        assert row["reason"].startswith("payment unavailable")
    finally:
        system.start("pay")
        await system.wait_ready("pay")
    await place(system, via="gateway")


async def test_an_order_rejected_while_pay_hung_is_never_left_charged(system):
    system.processes["pay"].send_signal(signal.SIGSTOP)
    try:
        status, body, _ = await system.request("POST", f"{system.url('order')}/orders", json=CAKE)
        assert status == 503 and "did not answer" in body["error"]
    finally:
        system.processes["pay"].send_signal(signal.SIGCONT)
    order_id = body["orderId"]
    await until_status(system, order_id, "Rejected")

    async def settled():
        status, ledger, _ = await system.request("GET", f"{system.url('pay')}/payments/{order_id}")
        if status == 404:
            return {"charged": 0, "refunded": 0}
        actions = {p["action"]: p["price"] for p in ledger["payments"]}
        # Either pay refused the late charge, or it refunded it: wait until the books say which.
        if "apply" in actions and "cancel" not in actions:
            return None
        return {"charged": actions.get("apply", 0), "refunded": actions.get("cancel", 0)}

    books = await eventually(settled, what=f"order {order_id} not left charged")
    assert books["charged"] == books["refunded"]
    await mypage_row(system, order_id, "Rejected")


async def _row_with_status(system, order_id, wanted):
    row = await mypage(system, order_id, via="gateway")
    return row if row and row["status"] == wanted else None


async def test_mypage_answers_from_its_table_after_a_restart(system):
    order = await place(system)
    await until_status(system, order["id"], "Confirming")
    await confirm(system, order["id"])
    before = await eventually(lambda: confirmed_row(system, order["id"]), what="row before restart")
    assert system.stop("mypage") == 0
    system.start("mypage")
    await system.wait_ready("mypage")
    assert await mypage(system, order["id"]) == before


async def test_repeating_a_confirmation_or_a_payment_changes_nothing(system):
    order = await place(system)
    await until_status(system, order["id"], "Confirming")
    first, again = await confirm(system, order["id"]), await confirm(system, order["id"])
    assert first == again
    payment = {"orderId": order["id"], "price": 25000, "action": "apply"}
    status, body, _ = await system.request("POST", f"{system.url('pay')}/payments", json=payment)
    assert status == 200 and body["orderId"] == order["id"]  # the charge already made, not a second one
    status, ledger, _ = await system.request("GET", f"{system.url('pay')}/payments/{order['id']}")
    assert [p["action"] for p in ledger["payments"]] == ["apply"]


async def test_only_declared_topics_exist_on_the_broker(system, kafka):
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    declared = {t.name for t in catalog().topics.values()} | {t.changelog for t in catalog().tables.values()}
    # Kafka's own topics, and the one Faust uses to elect a partition-assignment leader per app.
    internal = {t for t in topics if t.startswith("__") or t.endswith("-__assignor-__leader")}
    assert topics - internal == declared


async def test_every_service_serves_its_probe_pages(system):
    await place(system, via="gateway")
    for service in ("order", "order-worker", "pay", "bakery", "mypage", "gateway"):
        status, health, _ = await system.request("GET", f"{system.url(service)}/health")
        assert status == 200 and health["status"] == "ready", service
        async with system.http.get(f"{system.url(service)}/metrics") as response:
            text = await response.text()
        assert response.status == 200 and response.content_type.startswith("text/plain"), service
        assert "bread_" in text, service
    async with system.http.get(f"{system.url('order')}/metrics") as response:
        assert 'bread_http_requests_total{route="/orders",service="order",status="201"}' in await response.text()

    async def mypage_counted() -> bool:  # its worker may have just restarted, its counters anew
        async with system.http.get(f"{system.url('mypage')}/metrics") as response:
            return 'bread_events_consumed_total{context="mypage"' in await response.text()
    await eventually(mypage_counted, what="Mypage counting the order's events")
