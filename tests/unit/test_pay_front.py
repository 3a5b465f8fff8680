"""A pay front in-process (aiohttp's test client), in front of a fake ledger: it checks each request itself,
passes on only what it accepts — with who asked — and answers 503 when the ledger is away."""
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.settings import Settings
from api.pay import front_app


@pytest.fixture
async def ledger():
    """A stand-in for the ledger pay: it records what reached it and answers as the ledger would."""
    reached: list[tuple[str, str, dict, object]] = []

    async def payments(request: web.Request) -> web.Response:
        body = await request.json() if request.method == "POST" else None
        reached.append((request.method, request.path, dict(request.headers), body))
        return web.json_response({"id": 1, "orderId": 7, "action": "apply", "price": 5, "status": "Approved"},
                                 status=201 if body else 200, headers={"Location": "/payments/7"})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_route("*", "/payments{tail:.*}", payments)
    app.router.add_get("/health", health)
    server = TestServer(app)
    await server.start_server()
    yield server, reached
    await server.close()


@pytest.fixture
async def front(ledger):
    server, _ = ledger
    settings = Settings.from_env({"PAY_LEDGER_URL": str(server.make_url("")).rstrip("/")})
    client = TestClient(TestServer(front_app(settings)))
    await client.start_server()
    yield client
    await client.close()


async def test_the_front_passes_a_sound_payment_on_whole(front, ledger):
    _, reached = ledger
    answer = await front.post("/payments", json={"orderId": 7, "price": 5, "action": "apply"},
                              headers={"Idempotency-Key": "k-1", "X-Principal": "ops", "X-Principal-Role": "service"})
    assert answer.status == 201 and answer.headers["Location"] == "/payments/7"
    (method, path, headers, body), = reached
    assert (method, path, body) == ("POST", "/payments", {"orderId": 7, "price": 5, "action": "apply"})
    assert (headers["Idempotency-Key"], headers["X-Principal"], headers["X-Principal-Role"]) == \
        ("k-1", "ops", "service")
    lookup = await front.get("/payments/7")
    assert lookup.status == 200 and reached[-1][:2] == ("GET", "/payments/7")


@pytest.mark.parametrize("body, headers, status", [
    ({"orderId": 7, "price": 0, "action": "apply"}, {}, 400),                              # the front's own check
    ({"orderId": 7, "action": "steal"}, {}, 400),
    ({"orderId": 7, "action": "cancel"}, {"X-Principal": "alice", "X-Principal-Role": "customer"}, 403),
])
async def test_the_front_refuses_what_the_ledger_would_refuse(front, ledger, body,
                                                                                             headers, status):
    _, reached = ledger
    answer = await front.post("/payments", json=body, headers=headers)
    assert answer.status == status and "error" in await answer.json()
    assert reached == []


async def test_with_the_ledger_away_the_front_is_unavailable(ledger, front):
    server, _ = ledger
    await server.close()
    answer = await front.post("/payments", json={"orderId": 7, "price": 5})
    assert answer.status == 503 and "ledger" in (await answer.json())["error"]
    health = await front.get("/health")
    assert health.status == 503
