"""The hardened gateway against the running system: bearer tokens and customers' own orders, body and rate
limits, per-route timeouts, the JSON access log."""
from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import CAKE, eventually, log_records


@pytest.fixture
def gateway(extra):
    """Start one more gateway with settings of its own."""
    return lambda name, **settings: extra("gateway", name, **settings)


async def test_with_auth_on_a_customer_sees_only_their_own_orders(system, gateway, tmp_path):
    tokens = tmp_path / "tokens"
    alice, bob = (system.token(tokens, who) for who in ("alice", "bob"))
    gw = system.url(await gateway("gateway-auth", GATEWAY_AUTH="on", GATEWAY_TOKENS_FILE=str(tokens)))

    def auth(token: str, **more: str) -> dict:
        return {"headers": {"Authorization": f"Bearer {token}", **more}}

    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {alice}"}):
        status, body, answer = await system.request("POST", f"{gw}/orders", json=CAKE, headers=headers)
        assert status == 401 and "bearer token" in body["error"] and answer["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = await system.request("GET", f"{gw}/health")
    assert status == 200

    status, mine, _ = await system.request("POST", f"{gw}/orders", json=CAKE, **auth(alice))
    assert status == 201, mine
    # A customer id sent by the caller is dropped: only the token says who it is.
    status, theirs, _ = await system.request("POST", f"{gw}/orders", json=CAKE,
                                             **auth(bob, **{"X-Customer-ID": "alice"}))
    assert status == 201, theirs

    async def order_of(token, order_id):
        status, body, _ = await system.request("GET", f"{gw}/orders/{order_id}", **auth(token))
        return body if status == 200 else None
    assert (await eventually(lambda: order_of(alice, mine["id"]), what="alice's order"))["customerId"] == "alice"
    assert (await eventually(lambda: order_of(bob, theirs["id"]), what="bob's order"))["customerId"] == "bob"

    async def alices_page():
        status, page, _ = await system.request("GET", f"{gw}/mypages?size=1000", **auth(alice))
        rows = page["_embedded"]["mypages"]
        return rows if status == 200 and any(r["orderId"] == mine["id"] for r in rows) else None
    rows = await eventually(alices_page, what="alice's mypage row")
    assert {r["customerId"] for r in rows} == {"alice"}
    for method, path in (("GET", f"/mypages/{theirs['id']}"), ("GET", f"/orders/{theirs['id']}"),
                         ("DELETE", f"/orders/{theirs['id']}")):
        status, body, _ = await system.request(method, f"{gw}{path}", **auth(alice))
        assert status == 404, (path, body)

    # With auth off (the shared gateway), the seed's calls need no token and Mypage shows every order (bob's
    # too, once Mypage has folded it: only alice's row was waited for above).
    async def everyones_page():
        status, page, _ = await system.request("GET", f"{system.url('gateway')}/mypages?size=1000")
        return status == 200 and {mine["id"], theirs["id"]} <= {r["orderId"] for r in page["_embedded"]["mypages"]}
    await eventually(everyones_page, what="both customers' orders on the Mypage without auth")


async def test_the_gateway_refuses_what_is_over_its_limits(system, gateway):
    gw = system.url(await gateway("gateway-limited", GATEWAY_MAX_BODY_BYTES="1024",
                                  GATEWAY_RATE_LIMIT_RPS="0.5", GATEWAY_RATE_LIMIT_BURST="3"))
    big = {"item": "cake", "qty": 1, "note": "x" * 2000}
    status, body, _ = await system.request("POST", f"{gw}/orders", json=big)
    assert status == 413 and "1024" in body["error"]

    async def chunks():
        for _ in range(3):
            yield b"x" * 600
    status, body, _ = await system.request("POST", f"{gw}/orders", data=chunks(),
                                           headers={"Content-Type": "application/json"})
    assert status == 413 and "1024" in body["error"]

    # The chunked body took the first of the burst of three (its size was known only while it streamed).
    answers = [await system.request("GET", f"{gw}/mypages?size=1") for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 429]
    _, body, headers = answers[-1]
    assert "too many requests" in body["error"] and 1 <= int(headers["Retry-After"]) <= 2


async def test_each_route_has_its_own_timeout(system, gateway):
    name = await gateway("gateway-timeouts", GATEWAY_TIMEOUT_PAYMENTS_S="0.3")
    gw = system.url(name)
    system.processes["pay"].send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, body, _ = await system.request("GET", f"{gw}/payments/1", headers={"X-Correlation-ID": "slow-pay-1"})
        took = time.monotonic() - started
    finally:
        system.processes["pay"].send_signal(signal.SIGCONT)
    assert status == 504 and body["service"] == "pay" and "0.3s" in body["error"]
    assert took < 2
    status, _, _ = await system.request("GET", f"{gw}/mypages/999999", headers={"X-Correlation-ID": "missing-1"})
    assert status == 404

    async def both_logged() -> dict:  # a streamed answer is logged once it has been sent: just after
        entries = {e["correlationId"]: e for e in log_records(system, name) if e["logger"] == "gateway.access"}
        return entries if {"slow-pay-1", "missing-1"} <= set(entries) else {}
    entries = await eventually(both_logged, timeout=5, what="both access log lines")
    assert entries["slow-pay-1"]["status"] == 504 and entries["slow-pay-1"]["method"] == "GET"
    assert entries["missing-1"] == {**entries["missing-1"], "path": "/mypages/999999", "status": 404}
    assert entries["missing-1"]["durationMs"] >= 0 and entries["missing-1"]["client"] == "127.0.0.1"
