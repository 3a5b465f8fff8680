"""The Faust workers' web faces in-process: Mypage, the bakery and the order worker, each built by its composition
root with an in-memory table store and served by aiohttp's test client — no broker. A fake router stands in for
the consumer group's assignment (which worker holds which key); rows are put straight into the table's store,
as a worker's agent would have left them."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from faust.exceptions import SameNode
from yarl import URL

from agents.bakery.tickets import Ticket
from agents.deadletters import dead_letter
from agents.runtime.bakery import BakeryAgents, DecisionNotApplied
from agents.settings import Settings
from api import bakery, mypage, order_worker

ALICE = {"X-Principal": "alice", "X-Principal-Role": "customer"}
BOB = {"X-Principal": "bob", "X-Principal-Role": "customer"}
BAKER = {"X-Principal": "bea", "X-Principal-Role": "baker"}
ADMIN = {"X-Principal": "root", "X-Principal-Role": "admin"}
SERVICE = {"X-Principal": "ops", "X-Principal-Role": "service"}


class Assignment:
    """The assignment of a group with this worker holding every key, or with `others` holding a share of the
    table (`elsewhere`: the keys the first of them holds)."""

    def __init__(self, me: str, others: list[str] = (), elsewhere: set[str] = frozenset()) -> None:
        self.owners = [me, *others]
        self.elsewhere = elsewhere

    async def route_req(self, *_: Any) -> None:
        raise SameNode()

    def key_store(self, _: str, key: str) -> URL:
        return URL(self.owners[1] if key in self.elsewhere else self.owners[0])

    def table_metadata(self, _: str) -> dict[str, dict]:
        return {owner: {} for owner in self.owners}


def row(order_id: int, customer: str, status: str = "Confirmed") -> dict:
    return {"orderId": order_id, "customerId": customer, "item": "cake", "qty": 1, "price": 25000, "status": status,
            "history": [{"event": "OrderPlaced", "at": f"2026-11-28T00:00:{order_id:02d}+00:00"}]}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"BREAD_STORE": "memory://", "BREAD_DATA_DIR": str(tmp_path)})


async def served(context_app, others: list[str] = (), elsewhere: set[str] = frozenset()) -> TestClient:
    app = context_app.app
    app.router = Assignment(app.conf.canonical_url, list(others), elsewhere)
    client = TestClient(TestServer(app.web.web_app))
    await client.start_server()
    return client


@pytest.fixture
async def mypages(settings):
    worker = mypage.build(settings)
    table = next(iter(worker.app.tables.values()))
    for order_id, customer in [(1, "alice"), (2, "bob"), (3, "alice")]:
        table.data[str(order_id)] = row(order_id, customer)
    client = await served(worker)
    yield client, table
    await client.close()


async def test_a_mypage_row_is_served_in_hal_shape_with_a_link_to_itself(mypages):
    client, _ = mypages
    answer = await client.get("/mypages/1")
    body = await answer.json()
    assert answer.status == 200
    assert (body["orderId"], body["status"]) == (1, "Confirmed")
    assert body["_links"]["self"]["href"].endswith("/mypages/1")
    missing = await client.get("/mypages/99")
    assert missing.status == 404 and "99" in (await missing.json())["error"]


async def test_a_customer_sees_only_their_own_rows(mypages):
    client, _ = mypages
    assert (await client.get("/mypages/2", headers=ALICE)).status == 404
    assert (await client.get("/mypages/2", headers=BOB)).status == 200
    page = await (await client.get("/mypages", headers=ALICE)).json()
    assert [r["orderId"] for r in page["_embedded"]["mypages"]] == [3, 1]
    assert page["page"]["totalElements"] == 2


async def test_a_page_lists_the_newest_rows_first(mypages):
    client, _ = mypages
    page = await (await client.get("/mypages", params={"page": "1", "size": "2"})).json()
    assert [r["orderId"] for r in page["_embedded"]["mypages"]] == [1]
    assert page["page"] == {"size": 2, "totalElements": 3, "totalPages": 2, "number": 1}
    for bad in ({"size": "0"}, {"page": "-1"}, {"size": "many"}, {"size": "100000"},
                {"page": "1904820471952502061987560161280"}):  # past every order there could be (schemathesis)
        answer = await client.get("/mypages", params=bad)
        assert answer.status == 400 and "error" in await answer.json()
    far = await (await client.get("/mypages", params={"page": str(2**53 - 1), "size": "1000"})).json()
    assert far["_embedded"]["mypages"] == [] and far["page"]["totalElements"] == 3


async def test_mypage_checks_the_principal_the_gateway_named(mypages):
    client, _ = mypages
    assert (await client.get("/mypages", headers=BAKER)).status == 403
    half = await client.get("/mypages/1", headers={"X-Principal": "alice"})
    assert half.status == 400 and "error" in await half.json()


async def test_a_page_gathers_every_worker_s_share_for_whoever_asks(settings):
    """Two Mypage workers: this one holds order 1, the other (a stand-in answering `scope=local` as a worker
    does) orders 2 and 4. The page is the newest rows of both; the other worker was asked for Alice's rows."""
    asked: list[dict] = []

    async def other_share(request: web.Request) -> web.Response:
        asked.append({"query": dict(request.query), "principal": request.headers.get("X-Principal")})
        return web.json_response({"rows": [row(4, "alice"), row(2, "alice")], "total": 2})

    other = web.Application()
    other.router.add_get("/mypages", other_share)
    async with TestServer(other) as other_server:
        worker = mypage.build(settings)
        next(iter(worker.app.tables.values())).data["1"] = row(1, "alice")
        client = await served(worker, others=[str(other_server.make_url("")).rstrip("/")])
        try:
            page = await (await client.get("/mypages", params={"size": "2"}, headers=ALICE)).json()
        finally:
            await client.close()
    assert [r["orderId"] for r in page["_embedded"]["mypages"]] == [4, 2]
    assert page["page"]["totalElements"] == 3
    assert asked == [{"query": {"scope": "local", "page": "0", "size": "2"}, "principal": "alice"}]


async def test_a_page_is_a_503_naming_the_problem_when_another_worker_is_away(settings):
    worker = mypage.build(settings)
    client = await served(worker, others=["http://127.0.0.1:9"])  # nothing listens on the discard port
    try:
        answer = await client.get("/mypages")
        assert answer.status == 503 and "mypage worker" in (await answer.json())["error"]
    finally:
        await client.close()


@pytest.fixture
async def tickets(settings, monkeypatch):
    """The bakery's face over two tickets; the worker's decision path replaced by one that records what it was
    handed and applies it as the agent would (or, for order 8, finds a cancel came first)."""
    decided: list[tuple] = []

    async def decide(self, order_id, decision, reason, correlation, within_s):
        decided.append((order_id, decision, reason))
        if order_id == 9:
            raise DecisionNotApplied()
        ticket = Ticket.from_json(self.tickets.get(str(order_id)))
        return replace(ticket, status="Closed" if order_id == 8 else decision)

    monkeypatch.setattr(BakeryAgents, "decide", decide)
    worker = bakery.build(settings)
    table = next(iter(worker.app.tables.values()))
    for order_id in (7, 8, 9):
        table.data[str(order_id)] = {"orderId": order_id, "status": "Confirming", "correlationId": f"c-{order_id}",
                                     "item": "baguette", "qty": order_id - 6}
    table.data["5"] = {"orderId": 5, "status": "Confirmed"}  # kept before tickets said what to bake
    table.data["6"] = {"orderId": 6, "status": "Unpaid", "opened": False, "item": "cake", "qty": 1}
    client = await served(worker)
    yield client, decided
    await client.close()


async def test_a_baker_s_decision_is_answered_with_the_ticket_decided(tickets):
    client, decided = tickets
    answer = await client.post("/bakeries", json={"orderId": 7, "status": "Confirmed"}, headers=BAKER)
    assert answer.status == 200 and (await answer.json())["status"] == "Confirmed"
    assert decided == [(7, "Confirmed", None)]


async def test_a_decision_the_ticket_has_already_is_answered_without_deciding_again(tickets):
    client, decided = tickets
    answer = await client.post("/bakeries", json={"orderId": 5, "status": "Confirmed"}, headers=BAKER)
    assert answer.status == 200 and (await answer.json())["status"] == "Confirmed"
    assert decided == []


@pytest.mark.parametrize("body, status, names", [
    (b"{not json", 400, "JSON"),
    (b'{"orderId": 7, "status": "Maybe"}', 400, "status"),
    (b'{"orderId": 5, "status": "Rejected"}', 409, "already Confirmed"),
    (b'{"orderId": 404, "status": "Confirmed"}', 404, "no bakery ticket"),
    (b'{"orderId": 8, "status": "Confirmed"}', 409, "already Closed"),
    (b'{"orderId": 9, "status": "Confirmed"}', 503, "not applied"),
])
async def test_a_decision_that_cannot_be_applied_is_refused_naming_why(tickets, body, status, names):
    client, _ = tickets
    answer = await client.post("/bakeries", data=body, headers={**BAKER, "Content-Type": "application/json"})
    assert answer.status == status
    assert names in (await answer.json())["error"]


async def test_tickets_are_the_bakers_business_not_the_customers(tickets):
    client, _ = tickets
    assert (await client.get("/bakeries/7", headers=BAKER)).status == 200
    assert (await client.get("/bakeries/7", headers=ALICE)).status == 403
    assert (await client.post("/bakeries", json={"orderId": 7, "status": "Confirmed"}, headers=ALICE)).status == 403


async def test_an_order_nobody_paid_for_yet_has_no_ticket_to_see_or_decide(tickets):
    client, decided = tickets
    answer = await client.get("/bakeries/6", headers=BAKER)
    assert answer.status == 404 and "not paid yet" in (await answer.json())["error"]
    answer = await client.post("/bakeries", json={"orderId": 6, "status": "Confirmed"}, headers=BAKER)
    assert answer.status == 404 and decided == []


async def test_the_baker_sees_the_tickets_waiting_longest_first(tickets):
    client, _ = tickets
    waiting = await (await client.get("/bakeries", headers=BAKER)).json()
    assert [t["orderId"] for t in waiting["tickets"]] == [7, 8, 9] and waiting["total"] == 3  # not 5: decided
    assert [(t["qty"], t["item"]) for t in waiting["tickets"]] == [(1, "baguette"), (2, "baguette"), (3, "baguette")]
    first = await (await client.get("/bakeries", params={"size": "1"}, headers=BAKER)).json()
    assert [t["orderId"] for t in first["tickets"]] == [7] and first["total"] == 3
    for size in ("0", "1001", "many"):
        answer = await client.get("/bakeries", params={"size": size}, headers=BAKER)
        assert answer.status == 400 and "'size'" in (await answer.json())["error"]
    assert (await client.get("/bakeries", headers=ALICE)).status == 403


async def test_the_waiting_tickets_are_gathered_from_every_bakery_worker(settings):
    async def other_share(request: web.Request) -> web.Response:
        assert request.query["scope"] == "local" and request.headers.get("X-Principal") == "bea"
        return web.json_response({"rows": [{"orderId": 2, "status": "Confirming"}], "total": 4})

    other = web.Application()
    other.router.add_get("/bakeries", other_share)
    async with TestServer(other) as other_server:
        worker = bakery.build(settings)
        next(iter(worker.app.tables.values())).data["3"] = {"orderId": 3, "status": "Confirming"}
        client = await served(worker, others=[str(other_server.make_url("")).rstrip("/")])
        try:
            waiting = await (await client.get("/bakeries", params={"size": "2"}, headers=BAKER)).json()
        finally:
            await client.close()
    assert [t["orderId"] for t in waiting["tickets"]] == [2, 3] and waiting["total"] == 5


async def test_a_decision_on_a_ticket_another_worker_holds_goes_to_it_whole(settings):
    reached: list[tuple] = []

    async def holder(request: web.Request) -> web.Response:
        reached.append((request.path, await request.json(), request.headers.get("X-Principal-Role")))
        return web.json_response({"orderId": 12, "status": "Confirmed"})

    other = web.Application()
    other.router.add_post("/bakeries", holder)
    async with TestServer(other) as other_server:
        client = await served(bakery.build(settings), others=[str(other_server.make_url("")).rstrip("/")],
                              elsewhere={"12"})
        try:
            answer = await client.post("/bakeries", json={"orderId": 12, "status": "Confirmed"}, headers=BAKER)
            assert answer.status == 200 and (await answer.json())["status"] == "Confirmed"
        finally:
            await client.close()
    assert reached == [("/bakeries", {"orderId": 12, "status": "Confirmed"}, "baker")]


@pytest.fixture
async def order_face(settings):
    worker = order_worker.build(settings)
    tables = {table.name: table for table in worker.app.tables.values()}
    orders = next(t for name, t in tables.items() if name.endswith("orders") and "request" not in name)
    requests = next(t for name, t in tables.items() if name.endswith("order-requests"))
    orders.data["11"] = {"orderId": 11, "customerId": "alice", "item": "cake", "qty": 1, "status": "Paid",
                         "placedAt": "2026-01-01T00:00:00.000+00:00", "history": []}
    orders.data["12"] = {"orderId": 12, "status": "Confirmed", "placedAt": "2026-01-01T00:00:01.000+00:00"}
    requests.data["r-1"] = {"orderId": 11, "customerId": "alice", "status": "Placed"}
    client = await served(worker)
    yield client, requests
    await client.close()


async def test_the_sagas_are_for_operators_with_the_unfinished_ones_listed(order_face):
    client, _ = order_face
    answer = await client.get("/sagas", headers=ADMIN)
    listing = await answer.json()
    assert answer.status == 200 and listing["counts"] == {"Confirmed": 1, "Paid": 1}
    assert [saga["orderId"] for saga in listing["unfinished"]] == [11] and listing["page"]["totalElements"] == 1
    for caller in (ALICE, BAKER):
        assert (await client.get("/sagas", headers=caller)).status == 403
    bad = await client.get("/sagas", params={"status": "Confirmed"}, headers=ADMIN)
    assert bad.status == 400 and "unfinished" in (await bad.json())["error"]


async def test_the_order_worker_serves_each_row_to_its_owner_only(order_face):
    client, _ = order_face
    order = await client.get("/orders/11", headers=ALICE)
    assert order.status == 200 and (await order.json())["status"] == "Paid"
    assert (await client.get("/orders/11", headers=BOB)).status == 404
    placed = await (await client.get("/order-requests/r-1", headers=ALICE)).json()
    assert (placed["requestId"], placed["orderId"]) == ("r-1", 11)


async def test_a_placement_wait_is_bounded(order_face):
    client, _ = order_face
    for bad in ("soon", "-1", "31"):
        answer = await client.get("/placements/r-2", params={"wait": bad})
        assert answer.status == 400 and "wait" in (await answer.json())["error"]
    started = asyncio.get_running_loop().time()
    answer = await client.get("/placements/r-2", params={"wait": "0.2"})
    assert answer.status == 404 and asyncio.get_running_loop().time() - started >= 0.2
    assert (await client.get("/placements/r-1", params={"wait": "5"})).status == 200


async def test_a_worker_serves_its_probe_pages_with_bread_s_metrics(mypages):
    client, _ = mypages
    answer = await client.get("/metrics")
    text = await answer.text()
    assert answer.status == 200 and answer.content_type == "text/plain"
    assert "bread_events_consumed_total" in text and "bread_consumer_lag" in text
    pipeline = await (await client.get("/pipeline")).json()
    assert pipeline == {"context": "mypage", "delayS": 0.0}


@pytest.fixture
async def dead_letter_face(settings):
    letter = dead_letter("mypage", "bread.orders", 2, 17, b"1", b"not json", ValueError("not JSON"))

    async def read() -> list:
        return [(0, letter)]
    client = await served(order_worker.build(settings, read_letters=read))
    yield client
    await client.close()


async def test_the_dead_letters_are_for_operators(dead_letter_face):
    client = dead_letter_face
    listing = await (await client.get("/dead-letters", headers=ADMIN)).json()
    assert [(letter["id"], letter["error"]) for letter in listing["letters"]] == [(0, "ValueError: not JSON")]
    assert (await client.get("/dead-letters", headers=SERVICE)).status == 200
    for caller in (ALICE, BAKER):
        assert (await client.get("/dead-letters", headers=caller)).status == 403
    bad = await client.get("/dead-letters", params={"size": "0"}, headers=ADMIN)
    assert bad.status == 400 and "'size'" in (await bad.json())["error"]


async def test_only_an_admin_replays_a_dead_letter_and_only_one_that_exists(dead_letter_face):
    client = dead_letter_face
    assert (await client.post("/dead-letters/0/replay", headers=SERVICE)).status == 403
    for missing in ("7", "x"):
        answer = await client.post(f"/dead-letters/{missing}/replay", headers=ADMIN)
        assert answer.status == 404 and "no dead letter" in (await answer.json())["error"]
