"""The gateway refuses a new order itself while the saga runs too far behind — the order edge never sees it —
and passes on what the edge must answer: a keyed request, anything but a new order. In-process, with a
stand-in edge that records what reached it."""
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.order.admission import Admission
from agents.runtime.pipeline import PipelineWatch
from agents.settings import Settings
from api.admission import ADMISSION, PIPELINE
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
            app[ADMISSION] = Admission(settings.order_shed_from_s, settings.order_shed_all_s)
            app[PIPELINE] = PipelineWatch(None, {}, every_s=60)
            yield

        app = init_app(settings, watch=told)
        client = TestClient(TestServer(app))
        await client.start_server()
        yield client, app[PIPELINE], reached
        await client.close()


async def test_while_bread_runs_far_behind_the_gateway_refuses_a_new_order_without_a_second_hop(gateway):
    client, pipeline, reached = gateway
    pipeline.heard("order-worker", 7.5)
    answer = await client.post("/orders", json={"item": "cake"})
    body = await answer.json()
    assert answer.status == 503 and answer.headers["Retry-After"] == "8" and "busy" in body["error"]
    assert reached == []


async def test_a_keyed_order_a_lookup_and_a_calm_bread_go_through(gateway):
    client, pipeline, reached = gateway
    pipeline.heard("bakery", 7.5)
    keyed = await client.post("/orders", json={"item": "cake"}, headers={"Idempotency-Key": "k-17"})
    lookup = await client.get("/orders/1")
    assert (keyed.status, lookup.status) == (201, 200)
    pipeline.heard("bakery", 0.2)
    assert (await client.post("/orders", json={"item": "cake"})).status == 201
    assert reached == [("POST", "/orders"), ("GET", "/orders/1"), ("POST", "/orders")]
