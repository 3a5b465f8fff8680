"""The circuit breaker on the order edge's call to pay, and both fallbacks, against the real broker and pay."""
from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import CAKE, System, breaker_state, confirm, eventually, mypage_row, until_status

# A breaker quick to open and to try again, so the test watches every state in seconds.
BREAKER = {"PAY_TIMEOUT_S": "0.5", "PAY_BREAKER_WINDOW": "4", "PAY_BREAKER_MIN_CALLS": "2",
           "PAY_BREAKER_OPEN_S": "3", "PAY_BREAKER_HALF_OPEN_CALLS": "1"}


async def post_order(system: System, edge: str) -> tuple[int, dict, dict, float]:
    started = time.monotonic()
    status, body, headers = await system.request("POST", f"{system.url(edge)}/orders", json=CAKE)
    return status, body, headers, time.monotonic() - started


@pytest.fixture
def edge(extra):
    """Start one more order edge with the quick breaker and a fallback."""
    return lambda fallback: extra("order", f"order-{fallback}", PAY_FALLBACK=fallback, **BREAKER)


async def test_the_breaker_goes_round_its_states_with_pay(system, edge):
    name = await edge("reject")
    assert await breaker_state(system, name) == 0
    system.processes["pay"].send_signal(signal.SIGSTOP)
    try:
        for _ in range(2):  # pay hangs: each call waits out its timeout, and fails
            status, body, headers, took = await post_order(system, name)
            assert status == 503 and "did not answer" in body["error"] and took >= 0.5
        assert await breaker_state(system, name) == 1
        rejected = body["orderId"]
        status, body, headers, took = await post_order(system, name)
        assert status == 503 and "circuit breaker" in body["error"] and body["retryAfterS"] >= 1
        assert "orderId" not in body, "refused before it became an order: nothing is left behind"
        assert took < 0.5, "an open breaker answers at once, not after the timeout"
        assert 1 <= int(headers["Retry-After"]) <= 3
    finally:
        system.processes["pay"].send_signal(signal.SIGCONT)
    await until_status(system, rejected, "Rejected")  # an order whose call failed ends, for good

    await eventually(lambda: _state_is(system, name, 2), what="half-open after the wait")
    status, body, _, _ = await post_order(system, name)  # the trial call: pay answers again
    assert status == 201 and body["status"] == "Paid", body
    assert await breaker_state(system, name) == 0
    async with system.http.get(f"{system.url(name)}/metrics") as response:
        text = await response.text()
    for change in ('from_state="closed",to_state="open"', 'from_state="open",to_state="half_open"',
                   'from_state="half_open",to_state="closed"'):
        assert f'bread_breaker_transitions_total{{breaker="pay",{change}}} 1.0' in text


async def _state_is(system, name, wanted):
    return await breaker_state(system, name) == wanted


async def test_deferred_orders_are_paid_once_when_pay_returns(system, edge):
    name = await edge("defer")
    system.stop("pay")
    try:
        answers = [await post_order(system, name) for _ in range(4)]
        for status, body, headers, _ in answers:
            assert status == 202 and body["status"] == "PaymentPending", body
            assert headers["Location"] == f"/orders/{body['id']}"
        # The breaker opened after two failed calls; the orders after it were deferred at once.
        assert answers[-1][3] < 0.5 and "circuit breaker" in answers[-1][1]["reason"]
        ids = [body["id"] for _, body, _, _ in answers]
        for order_id in ids:
            await until_status(system, order_id, "PaymentPending")
        cancelled = ids.pop()
        status, body, _ = await system.request("DELETE", f"{system.url('order')}/orders/{cancelled}")
        assert status == 202, body
        await until_status(system, cancelled, "Cancelling")  # pay has to void it: it waits for pay too
    finally:
        system.start("pay")
        await system.wait_ready("pay")

    for order_id in ids:
        await until_status(system, order_id, "Confirming")
        await confirm(system, order_id)
        await until_status(system, order_id, "Confirmed")
        row = await mypage_row(system, order_id, "Confirmed")
        assert [step["event"] for step in row["history"]][:2] == ["OrderPlaced", "PaymentRequested"]
        status, ledger, _ = await system.request("GET", f"{system.url('pay')}/payments/{order_id}")
        assert [p["action"] for p in ledger["payments"]] == ["apply"]
    # The order cancelled while its payment waited ends Cancelled with nothing kept: pay met its payment
    # request and its cancellation in either order, and either refused the charge or refunded it.
    await until_status(system, cancelled, "Cancelled")
    status, body, _ = await system.request("GET", f"{system.url('pay')}/payments/{cancelled}")
    books = {p["action"]: p["price"] for p in body.get("payments", [])} if status == 200 else {}
    assert books.get("apply", 0) == books.get("cancel", 0), body
