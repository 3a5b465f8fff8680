"""The order edge in-process (aiohttp's test client) with fakes for what it talks to — Kafka, pay, the order
worker: what it answers, and which events it sends, for each kind of request and caller."""
import itertools

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.breaker import BreakerSettings, CircuitBreaker, Outcome
from agents.order.intake import Fallback, PaymentUnavailable
from agents.settings import Settings
from api.admission import DOOR, door_of
from api.order import HTTP, PAY, PUBLISHER, init_app


class Sent:
    """A publisher that keeps what it is given; each event's offset is its place in line."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self._offsets = itertools.count()

    async def send(self, event: dict) -> int:
        self.events.append(event)
        return next(self._offsets)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


class Pay:
    """pay as the edge sees it: it charges, or it cannot be called."""

    def __init__(self, reachable: bool = True) -> None:
        self.breaker = CircuitBreaker("fake-pay", BreakerSettings())
        self.fallback, self.reachable, self.charged = Fallback.REJECT, reachable, []

    async def charge(self, order_id, order, correlation) -> dict:
        if not self.reachable:
            raise PaymentUnavailable("pay is unreachable: connection refused")
        self.charged.append((order_id, order.price))
        return {"orderId": order_id, "status": "Approved"}


@pytest.fixture
async def edge():
    """The edge, and the fakes behind it: an order worker that knows order 5 in the status a test sets, and the
    request keyed k-placed, which placed order 9 for a cake."""
    worker_says = {"status": "Paid"}

    async def order_of_worker(request: web.Request) -> web.Response:
        if request.match_info["orderId"] != "5":
            return web.json_response({"error": "order not found"}, status=404)
        return web.json_response({"id": 5, "status": worker_says["status"], "correlationId": "saga-5"})

    async def placement_of_worker(request: web.Request) -> web.Response:
        if request.match_info["key"] != "k-placed":
            return web.json_response({"error": "no such request"}, status=404)
        return web.json_response({"orderId": 9, "status": "Paid", "reason": None, "item": "cake", "qty": 1,
                                  "price": 25000})

    worker = web.Application()
    worker.router.add_get("/orders/{orderId}", order_of_worker)
    worker.router.add_get("/placements/{key}", placement_of_worker)
    worker_server = TestServer(worker)
    await worker_server.start_server()
    sent, pay = Sent(), Pay()

    async def fakes(app: web.Application):
        app[PUBLISHER], app[PAY] = sent, pay
        app[HTTP] = aiohttp.ClientSession()
        yield
        await app[HTTP].close()

    settings = Settings.from_env({"ORDER_WORKER_URL": str(worker_server.make_url("")).rstrip("/"),
                                  "ORDER_ADMISSION": "off"})
    client = TestClient(TestServer(init_app(settings, connect=fakes)))
    await client.start_server()
    yield client, sent, pay, worker_says
    await client.close()
    await worker_server.close()


async def test_an_order_is_placed_for_its_customer(edge):
    client, sent, pay, _ = edge
    answer = await client.post("/orders", json={"item": "cake", "qty": 2},
                               headers={"X-Principal": "alice", "X-Principal-Role": "customer"})
    body = await answer.json()
    assert answer.status == 201 and body == {"id": 1, "item": "cake", "qty": 2, "status": "Paid", "price": 50000}
    assert answer.headers["Location"] == "/orders/1"
    assert sent.types() == ["OrderNumberReserved", "OrderPlaced"]  # pay announces the charge itself
    assert sent.events[1]["customerId"] == "alice" and pay.charged == [(1, 50000)]


async def test_the_menu_is_the_one_orders_are_checked_against_with_prices(edge):
    client, *_ = edge
    menu = await (await client.get("/menu", headers={"X-Principal": "bea", "X-Principal-Role": "baker"})).json()
    assert menu == {"items": [{"item": "cake", "price": 25000}, {"item": "bread", "price": 3000},
                              {"item": "baguette", "price": 4500}, {"item": "croissant", "price": 3500}]}


async def test_with_pay_unreachable_the_order_is_rejected_with_when_to_retry(edge):
    client, sent, pay, _ = edge
    pay.reachable = False
    answer = await client.post("/orders", json={"item": "bread"})
    body = await answer.json()
    assert answer.status == 503 and body["status"] == "Rejected" and "unreachable" in body["error"]
    assert int(answer.headers["Retry-After"]) >= 1
    assert sent.types() == ["OrderNumberReserved", "OrderPlaced", "OrderRejected"]


async def test_while_pays_breaker_is_open_a_new_order_is_refused_before_it_exists(edge):
    client, sent, pay, _ = edge
    pay.breaker = CircuitBreaker("fake-pay", BreakerSettings(window=2, minimum_calls=2, open_seconds=5))
    for _ in range(2):
        pay.breaker._record(False, Outcome(failed=True, slow=False))  # two failed calls: it opens
    answer = await client.post("/orders", json={"item": "bread"})
    body = await answer.json()
    assert answer.status == 503 and "circuit breaker" in body["error"] and "orderId" not in body
    assert 1 <= int(answer.headers["Retry-After"]) <= 5 and body["retryAfterS"] >= 1
    assert sent.types() == [] and pay.charged == []  # no number, no event, no call
    pay.fallback = Fallback.DEFER  # with defer the order is taken, and paid once pay is back
    assert (await client.post("/orders", json={"item": "bread"})).status != 503


@pytest.mark.parametrize("body, headers, status, says", [
    ({"item": "stone"}, {}, 400, "not on the menu"),
    ({"item": "cake", "qty": 0}, {}, 400, "qty"),
    ({"item": "cake"}, {"Idempotency-Key": "has space"}, 400, "Idempotency-Key"),
    ({"item": "cake"}, {"X-Principal": "bea", "X-Principal-Role": "baker"}, 403, "baker"),
    ({"item": "cake"}, {"X-Principal": "bea"}, 400, "together"),
])
async def test_a_bad_or_unauthorized_order_is_refused_with_nothing_sent(edge, body, headers, status, says):
    client, sent, pay, _ = edge
    answer = await client.post("/orders", json=body, headers=headers)
    assert answer.status == status and says in (await answer.json())["error"]
    assert sent.events == [] and pay.charged == []


@pytest.mark.parametrize("status_there, answered, announced", [
    ("Paid", 202, ["OrderCancelled"]),
    ("Cancelling", 202, []),             # asked again: the first cancel is under way
    ("Confirmed", 409, []),
    ("Rejected", 409, []),
])
async def test_a_cancel_is_taken_only_while_the_order_is_on_its_way(edge, status_there, answered, announced):
    client, sent, _, worker_says = edge
    worker_says["status"] = status_there
    answer = await client.delete("/orders/5")
    body = await answer.json()
    assert answer.status == answered, body
    if answered == 409:
        assert (body["orderId"], body["status"]) == (5, status_there) and "cannot be cancelled" in body["error"]
    assert sent.types() == announced
    if announced:
        assert sent.events[0]["correlationId"] == "saga-5"  # the cancel belongs to the order's saga
    assert (await client.delete("/orders/6")).status == 404


async def test_an_idempotency_key_sent_again_with_another_order_is_refused_naming_the_order_it_placed(edge):
    client, sent, pay, _ = edge
    answer = await client.post("/orders", json={"item": "cake", "qty": 2}, headers={"Idempotency-Key": "k-placed"})
    body = await answer.json()
    assert answer.status == 422 and body["orderId"] == 9 and "k-placed" in body["error"]
    assert sent.events == [] and pay.charged == []


async def test_an_idempotency_key_sent_again_with_its_order_is_answered_with_the_first_placement(edge):
    client, sent, _, _ = edge
    answer = await client.post("/orders", json={"item": "cake", "qty": 1}, headers={"Idempotency-Key": "k-placed"})
    assert answer.status == 201 and (await answer.json())["id"] == 9
    assert sent.events == []


@pytest.fixture
async def watched_edge():
    """An edge with its door on, which a test tells how far behind the contexts run (as the watch asking their
    GET /pipeline would)."""
    sent, pay = Sent(), Pay()
    settings = Settings.from_env({"ORDER_SHED_FROM_S": "1", "ORDER_SHED_ALL_S": "3"})

    async def fakes(app: web.Application):
        app[PUBLISHER], app[PAY] = sent, pay
        app[HTTP] = aiohttp.ClientSession()
        yield
        await app[HTTP].close()

    async def told(app: web.Application):
        app[DOOR] = door_of(app)
        yield

    app = init_app(settings, connect=fakes, watch=told)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, sent, pay, app[DOOR]
    await client.close()


async def test_while_the_saga_runs_far_behind_a_new_order_is_refused_at_once_with_when_to_retry(watched_edge):
    client, sent, pay, door = watched_edge
    door.heard(0.4)
    assert (await client.post("/orders", json={"item": "cake"})).status == 201
    door.heard(4.2)
    answer = await client.post("/orders", json={"item": "cake"})
    body = await answer.json()
    assert answer.status == 503 and answer.headers["Retry-After"] == "5" and body["retryAfterS"] == 5
    assert "busy" in body["error"]
    assert sent.types() == ["OrderNumberReserved", "OrderPlaced"] and len(pay.charged) == 1  # the first only


async def test_bad_input_is_still_a_400_however_busy_bread_is(watched_edge):
    client, sent, _, door = watched_edge
    door.heard(10)
    answer = await client.post("/orders", json={"item": "stone"})
    assert answer.status == 400 and sent.events == []
