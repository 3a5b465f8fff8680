"""The gateway holds or refuses a new order itself at its door — while the saga runs too far behind the order edge
never sees it — and passes on what the edge must answer: a keyed request, anything but a new order. In-process,
with a stand-in edge that records what reached it."""
import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.settings import Settings
from api.admission import DOOR, door_of
from api.gateway import init_app


@pytest.fixture
async def gateway():
    reached: list[tuple[str, str]] = []

    async def edge(request: web.Request) -> web.Response:
        reached.append((request.method, request.path))
        return web.json_response({"id": 1, "status": "Paid"}, status=201 if request.method == "POST" else 200)

    edge_app = web.Application()
    edge_app.router.add_route("*", "/orders{tail:.*}", edge)
    async with TestServer(edge_app) as edge_server:
        settings = Settings.from_env({"ORDER_URL": str(edge_server.make_url("")).rstrip("/"),
                                      "GATEWAY_RATE_LIMIT_RPS": "0"})

        async def told(app: web.Application):
            app[DOOR] = door_of(app)
            yield

        app = init_app(settings, watch=told)
        client = TestClient(TestServer(app))
        await client.start_server()
        yield client, app[DOOR], reached
        await client.close()


async def test_while_bread_runs_far_behind_the_gateway_refuses_a_new_order_without_a_second_hop(gateway):
    client, door, reached = gateway
    door.heard(7.5)
    answer = await client.post("/orders", json={"item": "cake"})
    body = await answer.json()
    assert answer.status == 503 and answer.headers["Retry-After"] == "8" and "busy" in body["error"]
    assert reached == []


async def test_what_the_door_does_not_pace_goes_through_at_once(gateway):
    client, door, reached = gateway
    door.heard(7.5)
    keyed = await client.post("/orders", json={"item": "cake"}, headers={"Idempotency-Key": "k-17"})
    lookup = await client.get("/orders/1")
    assert (keyed.status, lookup.status) == (201, 200)
    door.heard(0.2)
    assert (await client.post("/orders", json={"item": "cake"})).status == 201
    assert reached == [("POST", "/orders"), ("GET", "/orders/1"), ("POST", "/orders")]


async def test_new_orders_past_the_pace_wait_their_turn_up_to_a_bound(gateway):
    client, door, reached = gateway
    door.rate = 20.0  # a turn every 50 ms, an order waits at most ORDER_ADMISSION_WAIT_S (1 s)
    answers = await asyncio.gather(*(client.post("/orders", json={"item": "cake"}) for _ in range(25)))
    statuses = sorted(answer.status for answer in answers)
    assert statuses.count(201) >= 20 and set(statuses) <= {201, 503}
    refused = [answer for answer in answers if answer.status == 503]
    for answer in refused:
        assert "more than the 1s an order may wait" in (await answer.json())["error"]
    assert len(reached) == statuses.count(201)
