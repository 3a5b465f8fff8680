"""Admission at the order edge on the real system: while a context it depends on stands still with events
waiting, the edge refuses new orders at once (503, Retry-After, the reason) instead of taking orders that
would wait; once the context caught up, it takes them again."""
from tests.e2e.conftest import CAKE, System, eventually


async def answer_of(system: System, edge: str) -> tuple[int, dict, dict]:
    return await system.request("POST", f"{system.url(edge)}/orders", json=CAKE)


async def test_an_edge_refuses_new_orders_only_while_a_context_stands_still(
        system, extra):
    bakery = await extra("bakery", "bakery-stalling", BREAD_DEBUG="on", CONSUMER_LAG_SAMPLE_S="0.5")
    edge = await extra("order", "order-admitting", ORDER_SHED_FROM_S="1", ORDER_SHED_ALL_S="2",
                       ORDER_ADMISSION_POLL_S="0.2", BAKERY_URL=system.url(bakery))

    async def taken() -> bool:
        status, _, _ = await answer_of(system, edge)
        return status == 201
    # Nothing behind: taken — once the bakery's group has settled, for a worker joining moves its partitions,
    # and events wait meanwhile.
    await eventually(taken, timeout=40, what="the admitting edge taking an order on a bread with nothing behind")

    status, _, _ = await system.request("POST", f"{system.url(bakery)}/debug/stall-consumer?seconds=10")
    assert status == 200

    async def refused() -> tuple[dict, dict] | None:
        # Orders through the shared edge keep arriving on the stalled worker's partitions.
        await answer_of(system, "order")
        status, body, headers = await answer_of(system, edge)
        return (body, headers) if status == 503 else None

    body, headers = await eventually(refused, timeout=15, what="the admitting edge refusing a new order")
    assert "busy" in body["error"] and body["retryAfterS"] >= 1
    assert headers["Retry-After"] == str(body["retryAfterS"])
    await eventually(taken, timeout=40, what="the admitting edge taking orders again once the bakery caught up")
