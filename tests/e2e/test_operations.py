"""What the Kubernetes probes stand on, shown locally: graceful shutdown without a failed request, liveness
that notices a stuck event loop or a stalled consumer, readiness only once tables have recovered."""
from __future__ import annotations

import asyncio
import signal

import aiohttp

from agents.settings import Settings
from tests.e2e.conftest import CAKE, System, eventually, place

EDGES = ("order-a", "order-b")
# The shared system's edges take every order whatever the delay (SYSTEM_SETTINGS); these run the door as shipped.
SHIPPED = Settings.from_env({})
DOOR_AS_SHIPPED = {"ORDER_ADMISSION": "on", "ORDER_SHED_FROM_S": str(SHIPPED.order_shed_from_s),
                   "ORDER_SHED_ALL_S": str(SHIPPED.order_shed_all_s),
                   "ORDER_ADMISSION_WAIT_S": str(SHIPPED.order_admission_wait_s)}


async def steady_load(system: System, url: str, stop: asyncio.Event, statuses: list, clients: int = 6) -> None:
    async def client() -> None:
        while not stop.is_set():
            try:
                async with system.http.post(url, json=CAKE, timeout=aiohttp.ClientTimeout(total=15)) as answer:
                    statuses.append(answer.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                statuses.append(type(exc).__name__)
    await asyncio.gather(*(client() for _ in range(clients)))


async def test_restarting_both_edges_one_after_the_other_under_load_fails_no_request(system, extra):
    for name in EDGES:
        await extra("order", name, **DOOR_AS_SHIPPED)
    targets = ",".join(system.url(name) for name in EDGES)
    gateway = await extra("gateway", "gateway-zd", ORDER_URL=targets, GATEWAY_HEALTH_INTERVAL_S="0.2",
                          **DOOR_AS_SHIPPED)
    stop, statuses = asyncio.Event(), []
    load = asyncio.create_task(steady_load(system, f"{system.url(gateway)}/orders", stop, statuses))
    try:
        await eventually(lambda: _more_than(statuses, 20), what="load under way")
        for name in EDGES:
            assert system.stop(name, signal.SIGTERM) == 0  # a graceful stop exits cleanly
            seen = len(statuses)
            await eventually(lambda seen=seen: _more_than(statuses, seen + 10), what=f"orders while {name} is down")
            system.start("order", name=name, **DOOR_AS_SHIPPED)  # on the port it had
            await system.wait_ready(name)
        seen = len(statuses)
        await eventually(lambda: _more_than(statuses, seen + 20), what="orders after the restarts")
    finally:
        stop.set()
        await load
    availability = 100 * statuses.count(201) / len(statuses)
    print(f"\nzero-downtime restart of both edges: {len(statuses)} requests, availability {availability:.2f} %")
    assert set(statuses) == {201}, {s: statuses.count(s) for s in set(statuses)}


async def _more_than(items: list, count: int) -> bool:
    return len(items) > count


async def probe(url: str, timeout: float = 1.0) -> int | str:
    try:
        async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            return r.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return type(exc).__name__


async def test_liveness_fails_only_while_the_loop_is_stuck_or_the_consumer_stalls(system, extra):
    name = await extra("mypage", "mypage-debug", BREAD_DEBUG="on", LIVENESS_STALL_S="3",
                       CONSUMER_LAG_SAMPLE_S="0.5")
    live = f"{system.url(name)}/live"
    assert await probe(live) == 200

    # Shorter than the session timeout (6 s here): the worker stays in its group, only its loop is stuck.
    blocker = asyncio.create_task(system.request("POST", f"{system.url(name)}/debug/block-loop?seconds=4"))
    await eventually(lambda: _is_not(probe(live), 200), timeout=4, what="liveness failing on a stuck loop")
    await blocker
    await eventually(lambda: _is(probe(live), 200), timeout=10, what="alive again")
    await system.wait_ready(name)

    # Orders the worker handles first, so its partitions have a known place to be stuck at.
    for order_id in await place_orders(system, 8):
        await eventually(lambda order_id=order_id: _is(probe(f"{system.url(name)}/mypages/{order_id}", timeout=5), 200),
                         what=f"order {order_id} handled")
    status, _, _ = await system.request("POST", f"{system.url(name)}/debug/stall-consumer?seconds=15")
    assert status == 200
    await place_orders(system, 8)  # some of these land on the stalled worker's partitions
    async with system.http.get(live) as answer:
        assert answer.status == 200  # lag alone is no failure: it must also not move for LIVENESS_STALL_S
    stalled = await eventually(lambda: _body_if(live, 503), timeout=12, what="a stalled consumer detected")
    assert "no progress" in stalled["problems"][0]
    await eventually(lambda: _is(probe(live), 200), timeout=30, what="alive once the consumer moves again")


async def place_orders(system: System, count: int) -> list[int]:
    placed = []
    for _ in range(count):
        status, order, _ = await system.request("POST", f"{system.url('order')}/orders", json=CAKE)
        assert status == 201, order
        placed.append(order["id"])
    return placed


async def _is(awaitable, wanted) -> bool:
    return (await awaitable) == wanted


async def _is_not(awaitable, unwanted) -> bool:
    return (await awaitable) != unwanted


async def _body_if(url: str, status: int) -> dict | None:
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        return await answer.json() if answer.status == status else None


async def test_a_new_worker_is_ready_only_once_its_tables_hold_every_row_it_owns(system, extra):
    placed = [(await place(system))["id"] for _ in range(8)]  # some rows on every partition, most likely

    async def on_mypage() -> list[int]:
        status, page, _ = await system.request("GET", f"{system.url('mypage')}/mypages?size=1000")
        known = [row["orderId"] for row in page["_embedded"]["mypages"]] if status == 200 else []
        return known if set(placed) <= set(known) else []
    known = await eventually(on_mypage, what="the orders on Mypage")
    system.start("mypage", name="mypage-fresh")  # a new port: an empty RocksDB, all from the changelog
    answers = []

    async def ready() -> bool:
        answers.append(await probe(f"{system.url('mypage-fresh')}/health", timeout=2))
        return answers[-1] == 200
    try:
        await eventually(ready, timeout=90, what="the fresh worker ready")
        assert answers[0] != 200, "it cannot be ready before it has even recovered"
        # From the moment it says ready, no order it is asked for is missing (an owner still rebalancing
        # may answer 503 for a moment; a 404 would be a row lost).
        for order_id in known:
            async def found(order_id=order_id):
                status, body, _ = await system.request("GET", f"{system.url('mypage-fresh')}/mypages/{order_id}")
                assert status != 404, body
                return status == 200
            await eventually(found, timeout=30, what=f"order {order_id} on the fresh worker")
    finally:
        system.stop("mypage-fresh")


async def test_pay_fronts_scale_out_over_the_one_ledger(system, extra):
    """As the HPA scales pay on Kubernetes: fronts that take the provider's time, one ledger that decides."""
    ledger = system.url("pay")
    fronts = [await extra("pay", name, PAY_LEDGER_URL=ledger, PAY_DELAY_MS="50-100")
              for name in ("pay-front-a", "pay-front-b")]
    edge = await extra("order", "order-via-front", PAY_URL=system.url(fronts[0]))
    status, order, _ = await system.request("POST", f"{system.url(edge)}/orders", json=CAKE)
    assert status == 201 and order["status"] == "Paid", order
    # The other front sees the same books: the charge is there, and charging again changes nothing.
    status, books, _ = await system.request("GET", f"{system.url(fronts[1])}/payments/{order['id']}")
    assert status == 200 and [p["action"] for p in books["payments"]] == ["apply"]
    again = {"orderId": order["id"], "price": order["price"], "action": "apply"}
    status, payment, _ = await system.request("POST", f"{system.url(fronts[1])}/payments", json=again)
    assert status == 200 and payment["id"] == books["payments"][0]["id"]
    status, body, _ = await system.request("POST", f"{system.url(fronts[1])}/payments", json={"orderId": 0})
    assert status == 400, body  # checked by the front itself

    system.stop("pay")
    try:
        status, health, _ = await system.request("GET", f"{system.url(fronts[0])}/health")
        assert status == 503 and "ledger" in health["problems"][0]
    finally:
        system.start("pay")
        await system.wait_ready("pay")
    await system.wait_ready(fronts[0])
