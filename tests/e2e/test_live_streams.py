"""The live streams of Mypage and the bakery tickets, through the gateway, on the real broker: an order's story
streamed as it happens, a client that reconnects with its last id missing nothing (also across a restart of
the Mypage worker), and each customer streamed only their own orders."""
from __future__ import annotations

from typing import Callable

from tests.e2e.conftest import CAKE, EventStream, ServerSent, System, confirm, place, row_of


async def test_an_orders_story_streams_as_it_happens(system: System):
    stream = await EventStream.open(system, f"{system.url('gateway')}/mypages/stream")
    try:
        first = await stream.next()
        assert first.event == "reload" and first.id  # a new client loads its rows, then follows from here
        order = await place(system, via="gateway")
        confirming = await stream.until(row_of(order["id"], "Confirming"), what="the ticket opened")
        await confirm(system, order["id"], via="gateway")
        confirmed = (await stream.until(row_of(order["id"], "Confirmed"), what="the order confirmed"))[-1]
    finally:
        stream.close()
    statuses = [e.data["status"] for e in confirming if row_of(order["id"])(e)]
    assert statuses[0] in ("Ordered", "Paid") and statuses[-1] == "Confirming"
    assert [s["event"] for s in confirmed.data["history"]][-1] == "BakeryConfirmed"
    assert confirmed.data["cancellable"] is False
    assert confirmed.data["_links"]["self"]["href"] == f"{system.url('gateway')}/mypages/{order['id']}"


async def everything(stream: EventStream, wanted: dict[str, Callable[[ServerSent], bool]]) -> list[ServerSent]:
    """Every event until each of `wanted` was streamed at least once (in any order)."""
    seen: list[ServerSent] = []
    while wanted:
        seen += await stream.until(lambda e, wanted=wanted: any(match(e) for match in wanted.values()),
                                   what=", ".join(wanted))
        wanted = {name: match for name, match in wanted.items() if not match(seen[-1])}
    return seen


async def test_a_client_that_comes_back_with_its_last_id_gets_everything_it_missed(system: System):
    stream = await EventStream.open(system, f"{system.url('gateway')}/mypages/stream")
    first = await place(system, via="gateway")
    await stream.until(row_of(first["id"], "Confirming"))
    stream.close()  # gone, with its last id
    await confirm(system, first["id"])
    second = await place(system, via="gateway")
    back = await EventStream.open(system, f"{system.url('gateway')}/mypages/stream", last_id=stream.last_id)
    try:
        seen = await everything(back, {"the first order confirmed": row_of(first["id"], "Confirmed"),
                                       "the second order's ticket": row_of(second["id"], "Confirming")})
    finally:
        back.close()
    assert "reload" not in [e.event for e in seen]  # it went on from where it was
    # Nothing from before its position again (a row written again after it, with no news, may come).
    assert {e.data["status"] for e in seen if row_of(first["id"])(e)} <= {"Confirming", "Confirmed"}
    # The second order's story as it was written, not only where it stands (one row per event folded).
    assert len([e for e in seen if row_of(second["id"])(e)]) >= 2


async def test_a_client_resumes_across_a_restart_of_the_mypage_worker(system: System):
    stream = await EventStream.open(system, f"{system.url('gateway')}/mypages/stream")
    first = await place(system, via="gateway")
    await stream.until(row_of(first["id"], "Confirming"))
    stream.close()
    system.stop("mypage")
    await confirm(system, first["id"])  # while Mypage is down: its feed must catch up on it
    system.start("mypage")
    await system.wait_ready("mypage")
    back = await EventStream.open(system, f"{system.url('gateway')}/mypages/stream", last_id=stream.last_id)
    try:
        seen = await back.until(row_of(first["id"], "Confirmed"), timeout=60, what="the confirmation")
    finally:
        back.close()
    assert "reload" not in [e.event for e in seen]  # the new worker's feed read back what the client missed


async def test_with_authentication_on_a_customer_streams_only_their_own_orders(system: System, extra, tmp_path):
    tokens = tmp_path / "tokens"
    alice, bob = system.token(tokens, "alice"), system.token(tokens, "bob")
    gateway = system.url(await extra("gateway", "gateway-streams", GATEWAY_AUTH="on",
                                     GATEWAY_TOKENS_FILE=str(tokens)))
    as_alice = await EventStream.open(system, f"{gateway}/mypages/stream",
                                      headers={"Authorization": f"Bearer {alice}"})
    try:
        bobs = await place_as(system, gateway, bob)
        alices = await place_as(system, gateway, alice)
        seen = await as_alice.until(row_of(alices["id"], "Confirming"), what="Alice's order")
    finally:
        as_alice.close()
    assert all(e.data["customerId"] == "alice" for e in seen if e.event == "row")
    assert not any(row_of(bobs["id"])(e) for e in seen)
    status, _, _ = await system.request("GET", f"{gateway}/mypages/stream")
    assert status == 401


async def place_as(system: System, gateway: str, token: str) -> dict:
    status, order, _ = await system.request("POST", f"{gateway}/orders", json=CAKE,
                                            headers={"Authorization": f"Bearer {token}"})
    assert status == 201, order
    return order


async def test_the_bakery_streams_each_new_ticket(system: System):
    stream = await EventStream.open(system, f"{system.url('gateway')}/bakeries/stream")
    try:
        assert (await stream.next()).event == "reload"
        order = await place(system, via="gateway")
        opened = (await stream.until(row_of(order["id"], "Confirming"), what="the new ticket"))[-1]
        status, waiting, _ = await system.request("GET", f"{system.url('gateway')}/bakeries?size=1000")
        assert status == 200 and order["id"] in [t["orderId"] for t in waiting["tickets"]]
        await confirm(system, order["id"], via="gateway")
        await stream.until(row_of(order["id"], "Confirmed"), what="the decision")
    finally:
        stream.close()
    assert opened.data["bakeryId"]
