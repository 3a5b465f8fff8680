"""Who may do what, against the running system: every role on every route through a gateway with
authentication on, the same routes with it off, the stories of the issue (a customer confirming or refunding
her own order, reading another's), and the services refusing a caller that went around the gateway."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from agents.principals import ROLES
from tests.e2e.conftest import System, eventually
from tests.roles import EXPECTED

UNKNOWN = 987654321  # an order no test places
# One request per row of the roles table that reaches its service and changes nothing there: answered 200, or
# 400/404/409 by the service itself — so only the gateway's 401/403 can tell a refusal.
HARMLESS = {
    ("POST", "/orders"): ("/orders", {"item": "stone", "qty": 1}),
    ("GET", "/orders/1"): (f"/orders/{UNKNOWN}", None),
    ("DELETE", "/orders/1"): (f"/orders/{UNKNOWN}", None),
    ("GET", "/order-requests/r1"): ("/order-requests/nobody-asked", None),
    ("GET", "/menu"): ("/menu", None),
    ("GET", "/mypages"): ("/mypages?size=1", None),
    ("GET", "/mypages/1"): (f"/mypages/{UNKNOWN}", None),
    ("GET", "/bakeries/1"): (f"/bakeries/{UNKNOWN}", None),
    ("POST", "/bakeries"): ("/bakeries", {"orderId": UNKNOWN, "status": "Confirmed"}),
    ("GET", "/payments/1"): (f"/payments/{UNKNOWN}", None),
    ("POST", "/payments"): ("/payments", {"orderId": UNKNOWN, "action": "cancel"}),
    ("GET", "/sagas"): ("/sagas?size=1", None),
    ("GET", "/dead-letters"): ("/dead-letters?size=1", None),
    ("POST", "/dead-letters/1/replay"): (f"/dead-letters/{UNKNOWN}/replay", None),
}
ANSWERED_BY_THE_SERVICE = {200, 400, 404, 409}
PEOPLE = {"alice": "customer", "bob": "customer", "bea": "baker", "ops": "service", "root": "admin"}


@dataclass
class Secured:
    """A gateway with authentication on, in front of the shared services, and a token for each of PEOPLE."""
    system: System
    url: str
    tokens: dict[str, str]

    async def call(self, who: str | None, method: str, path: str, json: object = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        status, body, _ = await self.system.request(method, f"{self.url}{path}", json=json, headers=headers)
        return status, body


@pytest.fixture
async def secured(system, extra, tmp_path) -> Secured:
    tokens = {name: system.token(tmp_path / "tokens", name, role) for name, role in PEOPLE.items()}
    gateway = await extra("gateway", "gateway-roles", GATEWAY_AUTH="on",
                          GATEWAY_TOKENS_FILE=str(tmp_path / "tokens"))
    return Secured(system, system.url(gateway), tokens)


async def test_every_role_on_every_route_gets_what_the_roles_table_says(secured):
    assert set(HARMLESS) == set(EXPECTED) and set(PEOPLE.values()) == set(ROLES)
    for (method, row), allowed in EXPECTED.items():
        path, body = HARMLESS[(method, row)]
        for who, role in PEOPLE.items():
            status, answer = await secured.call(who, method, path, body)
            if role in allowed:
                assert status in ANSWERED_BY_THE_SERVICE, (who, method, path, status, answer)
            else:
                assert status == 403 and answer["role"] == role and role in answer["error"], (who, method, path)
        status, _ = await secured.call(None, method, path, body)
        assert status == 401, (method, path)


async def test_with_authentication_off_every_route_is_open_as_before(system):
    for method, row in EXPECTED:
        path, body = HARMLESS[(method, row)]
        status, answer, _ = await system.request(method, f"{system.url('gateway')}{path}", json=body)
        assert status in ANSWERED_BY_THE_SERVICE, (method, path, status, answer)


async def ledger_of(secured: Secured, order_id: int) -> dict:
    status, ledger = await secured.call("root", "GET", f"/payments/{order_id}")
    assert status == 200, ledger
    return ledger


def net(ledger: dict) -> int:
    """What the ledger holds of an order: charged − refunded."""
    sign = {"apply": 1, "cancel": -1, "decline": 0}
    return sum(sign[p["action"]] * p["price"] for p in ledger["payments"])


async def confirmed_by_bea(secured: Secured, order_id: int) -> None:
    """bea, a baker, confirms the order once its ticket is open; pay hears of it."""
    async def ticket_open():
        status, ticket = await secured.call("bea", "GET", f"/bakeries/{order_id}")
        return status == 200 and ticket["status"] == "Confirming"
    await eventually(ticket_open, what=f"order {order_id}'s ticket")
    status, ticket = await secured.call("bea", "POST", "/bakeries", {"orderId": order_id, "status": "Confirmed"})
    assert status == 200 and ticket["status"] == "Confirmed", ticket

    async def pay_heard():
        return (await ledger_of(secured, order_id))["bakeryConfirmed"]
    await eventually(pay_heard, what=f"pay hearing order {order_id} confirmed")


async def row_of(secured: Secured, who: str, order_id: int, wanted: str) -> dict:
    async def row():
        status, found = await secured.call(who, "GET", f"/mypages/{order_id}")
        return found if status == 200 and found["status"] == wanted else None
    return await eventually(row, what=f"order {order_id} {wanted} on {who}'s Mypage")


async def test_each_role_does_only_its_part_of_the_saga(secured):
    status, order = await secured.call("alice", "POST", "/orders", {"item": "cake", "qty": 1})
    assert status == 201, order
    order_id, price = order["id"], order["price"]
    status, _ = await secured.call("bea", "POST", "/orders", {"item": "cake", "qty": 1})
    assert status == 403  # a baker bakes; she does not order

    refused = [
        ("alice", "POST", "/bakeries", {"orderId": order_id, "status": "Confirmed"}),  # confirm her own order
        ("alice", "POST", "/payments", {"orderId": order_id, "action": "cancel"}),      # refund it
        ("alice", "GET", f"/payments/{order_id}", None),
        ("alice", "GET", f"/bakeries/{order_id}", None),
        ("bob", "GET", f"/payments/{order_id}", None),
        ("bob", "GET", f"/bakeries/{order_id}", None),
    ]
    for who, method, path, body in refused:
        status, answer = await secured.call(who, method, path, body)
        assert status == 403, (who, method, path, answer)
    for method, path in (("GET", f"/orders/{order_id}"), ("GET", f"/mypages/{order_id}"),
                         ("DELETE", f"/orders/{order_id}")):
        status, answer = await secured.call("bob", method, path)
        assert status == 404, (method, path, answer)  # bob cannot even learn that alice's order exists

    await confirmed_by_bea(secured, order_id)
    row = await row_of(secured, "alice", order_id, "Confirmed")
    assert row["customerId"] == "alice" and net(await ledger_of(secured, order_id)) == price


async def test_only_an_admin_refunds_a_confirmed_order(secured):
    status, order = await secured.call("alice", "POST", "/orders", {"item": "bread", "qty": 2})
    assert status == 201, order
    order_id = order["id"]
    await confirmed_by_bea(secured, order_id)
    refund = {"orderId": order_id, "action": "cancel"}

    status, answer = await secured.call("ops", "POST", "/payments", refund)
    assert status == 403 and "only an admin" in answer["error"], answer  # the saga never refunds baked bread
    status, answer = await secured.call("root", "POST", "/payments", refund)
    assert status == 409 and "reason" in answer["error"], answer
    status, refunded = await secured.call("root", "POST", "/payments", {**refund, "reason": "burnt crust"})
    assert status == 201 and (refunded["reason"], refunded["requestedBy"]) == ("burnt crust", "root"), refunded

    row = await row_of(secured, "alice", order_id, "Refunded")
    assert row["reason"] == "burnt crust" and row["action"] == "cancel"
    assert {"event": "PayCanceled", "reason": "burnt crust", "by": "root"}.items() <= row["history"][-1].items()

    async def order_refunded():  # the order worker folds the same events
        status, seen = await secured.call("alice", "GET", f"/orders/{order_id}")
        return status == 200 and seen["status"] == "Refunded"
    await eventually(order_refunded, what=f"order {order_id} Refunded")
    assert net(await ledger_of(secured, order_id)) == 0
    status, cancel = await secured.call("alice", "DELETE", f"/orders/{order_id}")
    assert status == 409, cancel


async def test_no_public_route_leaves_a_confirmed_order_without_its_money(secured):
    """The ledger invariant — Confirmed ⇔ charged − refunded = price — over every order any test ended, as an
    admin sees them: whatever routes were called, a confirmed order holds its price and a refunded one none."""
    status, order = await secured.call("bob", "POST", "/orders", {"item": "cake", "qty": 1})
    assert status == 201
    await confirmed_by_bea(secured, order["id"])
    await row_of(secured, "root", order["id"], "Confirmed")
    status, page = await secured.call("root", "GET", "/mypages?size=1000")
    assert status == 200
    for row in page["_embedded"]["mypages"]:
        if row["status"] in ("Confirmed", "Refunded"):
            expected = row["price"] if row["status"] == "Confirmed" else 0
            assert net(await ledger_of(secured, row["orderId"])) == expected, row


async def test_a_caller_going_around_the_gateway_gains_nothing(system):
    alice = {"X-Principal": "alice", "X-Principal-Role": "customer"}
    for service, method, path, body in (
        ("pay", "POST", "/payments", {"orderId": UNKNOWN, "action": "cancel"}),
        ("pay", "GET", f"/payments/{UNKNOWN}", None),
        ("bakery", "POST", "/bakeries", {"orderId": UNKNOWN, "status": "Confirmed"}),
        ("bakery", "GET", f"/bakeries/{UNKNOWN}", None),
    ):
        status, answer, _ = await system.request(method, f"{system.url(service)}{path}", json=body, headers=alice)
        assert status == 403, (service, path, answer)
    status, answer, _ = await system.request("GET", f"{system.url('order')}/orders/{UNKNOWN}",
                                             headers={"X-Principal": "alice"})
    assert status == 400 and "together" in answer["error"]
    status, page, _ = await system.request("GET", f"{system.url('mypage')}/mypages?size=1000&scope=local",
                                           headers=alice)
    assert status == 200 and all(row.get("customerId") == "alice" for row in page["rows"])


async def test_with_authentication_off_a_confirmed_order_is_refunded_only_with_a_reason(system):
    gateway = system.url("gateway")
    status, order, _ = await system.request("POST", f"{gateway}/orders", json={"item": "cake", "qty": 1})
    assert status == 201, order
    order_id = order["id"]

    async def decided():
        status, ticket, _ = await system.request("POST", f"{gateway}/bakeries",
                                                 json={"orderId": order_id, "status": "Confirmed"})
        return status == 200 and ticket

    await eventually(decided, what=f"order {order_id} confirmed")

    async def pay_heard():
        status, ledger, _ = await system.request("GET", f"{gateway}/payments/{order_id}")
        return status == 200 and ledger["bakeryConfirmed"]

    await eventually(pay_heard, what=f"pay hearing order {order_id} confirmed")
    refund = {"orderId": order_id, "action": "cancel"}
    status, answer, _ = await system.request("POST", f"{gateway}/payments", json=refund)
    assert status == 409 and "reason" in answer["error"], answer
    status, refunded, _ = await system.request("POST", f"{gateway}/payments", json={**refund, "reason": "dropped"})
    assert status == 201 and refunded["reason"] == "dropped" and "requestedBy" not in refunded

    async def refunded_row():
        status, row, _ = await system.request("GET", f"{gateway}/mypages/{order_id}")
        return status == 200 and row["status"] == "Refunded" and row
    assert (await eventually(refunded_row, what="the refund on Mypage"))["reason"] == "dropped"
