"""Two workers of one context share its partitions; a query reaching the one that does not own the key is
routed to the owner, and the Mypage list gathers every worker's share."""
from __future__ import annotations

import asyncio

from tests.e2e.conftest import System, confirm, eventually, place, until_status

SECOND = {"order-worker": "order-worker-2", "mypage": "mypage-2"}


async def both_ready(system: System) -> None:
    for service, second in SECOND.items():
        await system.wait_ready(service)
        await system.wait_ready(second)


async def alone(system: System, name: str) -> bool:
    """Whether the worker is ready and its router knows no other worker of its context any more."""
    status, _, _ = await system.request("GET", f"{system.url(name)}/health")
    if status != 200:
        return False
    _, owners, _ = await system.request("GET", f"{system.url(name)}/router/")
    return list(owners) == [system.url(name)]


async def test_every_order_is_answered_by_either_worker_of_its_context(system):
    for service, second in SECOND.items():
        system.start(service, name=second)
    try:
        await both_ready(system)
        orders = [await place(system) for _ in range(8)]
        for order in orders:
            await until_status(system, order["id"], "Confirming")
        await asyncio.gather(*(confirm(system, order["id"]) for order in orders))

        async def answered_alike(order_id: int, path: str, names: tuple[str, str]):
            answers = [await system.request("GET", f"{system.url(n)}{path}/{order_id}") for n in names]
            (status_a, body_a, _), (status_b, body_b, _) = answers
            # Links name the worker asked, so only the data must agree.
            body_a.pop("_links", None), body_b.pop("_links", None)
            done = status_a == status_b == 200 and body_a == body_b and body_a["status"] == "Confirmed"
            return body_a if done else None

        for order in orders:
            await eventually(lambda order=order: answered_alike(order["id"], "/orders",
                                                               ("order-worker", "order-worker-2")),
                             what=f"order {order['id']} from both order workers")
            await eventually(lambda order=order: answered_alike(order["id"], "/mypages", ("mypage", "mypage-2")),
                             what=f"mypage {order['id']} from both mypage workers")

        wanted = {order["id"] for order in orders}
        for name in ("mypage", "mypage-2"):
            status, listing, _ = await system.request("GET", f"{system.url(name)}/mypages?size=1000")
            assert status == 200
            assert wanted <= {row["orderId"] for row in listing["_embedded"]["mypages"]}, name
    finally:
        for second in SECOND.values():
            system.stop(second)
        # The first workers take every partition back once the group has rebalanced.
        for service in SECOND:
            await eventually(lambda service=service: alone(system, service), what=f"{service} alone again")
