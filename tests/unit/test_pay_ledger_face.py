"""pay's ledger face in-process (aiohttp's test client) over a real SQLite ledger, Kafka left out: what each
payment request is answered, for each caller, and what the ledger then holds."""
import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.catalog import catalog
from agents.pay.ledger import Ledger
from agents.settings import Settings
from api.pay import LEDGER, ledger_app

ADMIN = {"X-Principal": "root", "X-Principal-Role": "admin"}
SERVICE = {"X-Principal": "ops", "X-Principal-Role": "service"}


@pytest.fixture
async def pay(tmp_path):
    settings = Settings.from_env({"PAY_LIMIT": "100000", "PAY_DB": str(tmp_path / "ledger.sqlite3")})

    async def ledger_alone(app: web.Application):
        ledger = Ledger(settings.pay_ledger_path, lambda t: catalog().topic_of_event(t).name, settings.pay_limit)
        await ledger.open()
        app[LEDGER] = ledger
        yield
        await ledger.close()

    client = TestClient(TestServer(ledger_app(settings, connect=ledger_alone)))
    await client.start_server()
    yield client
    await client.close()


async def test_a_repeated_charge_is_answered_as_the_first(pay):
    first = await pay.post("/payments", json={"orderId": 7, "price": 25000}, headers={"Idempotency-Key": "k"})
    again = await pay.post("/payments", json={"orderId": 7, "price": 25000}, headers={"Idempotency-Key": "k"})
    assert (first.status, again.status) == (201, 200) and await first.json() == await again.json()
    other = await pay.post("/payments", json={"orderId": 8, "price": 5}, headers={"Idempotency-Key": "k"})
    assert other.status == 422
    shown = await (await pay.get("/payments/7")).json()
    assert [p["action"] for p in shown["payments"]] == ["apply"] and shown["bakeryConfirmed"] is False


async def test_over_the_limit_a_charge_is_declined_with_402(pay):
    declined = await pay.post("/payments", json={"orderId": 9, "price": 200000})
    assert declined.status == 402 and "limit" in (await declined.json())["error"]
    assert (await pay.get("/payments/404")).status == 404


async def test_once_confirmed_only_an_admin_with_a_reason_refunds(pay):
    await pay.post("/payments", json={"orderId": 7, "price": 25000})
    await pay.app[LEDGER].bakery_confirmed(7)
    refund = {"orderId": 7, "action": "cancel"}
    assert (await pay.post("/payments", json=refund, headers=SERVICE)).status == 403
    customer = {"X-Principal": "alice", "X-Principal-Role": "customer"}
    assert (await pay.post("/payments", json=refund, headers=customer)).status == 403  # not even a route of hers
    assert (await pay.post("/payments", json=refund, headers=ADMIN)).status == 409
    refunded = await pay.post("/payments", json={**refund, "reason": "burnt"}, headers=ADMIN)
    assert refunded.status == 201
    shown = await (await pay.get("/payments/7", headers=ADMIN)).json()
    assert shown["bakeryConfirmed"] is True
    assert [(p["action"], p.get("reason"), p.get("requestedBy")) for p in shown["payments"]] == [
        ("apply", None, None), ("cancel", "burnt", "root")]


async def test_payments_arriving_together_are_each_decided_on_their_own(pay):
    answers = await asyncio.gather(*(pay.post("/payments", json={"orderId": i, "price": 1000 * i})
                                     for i in range(1, 21)))
    assert [a.status for a in answers] == [201] * 20
