"""The saga's invariants hold while its processes are killed.

A few hundred orders go through the gateway — the bakery confirming at once, some orders over pay's limit,
some cancelled right after placing — while each Faust worker and pay are killed with SIGKILL, one at a time,
and started again. Afterwards every order must have ended exactly once, visibly on Mypage, and the books
must balance: an order is charged its price if Confirmed and nothing otherwise, and never charged twice.
"""
from __future__ import annotations

import asyncio
import random
import signal

from agents.order.lifecycle import OrderStatus, is_terminal
from tests.e2e.conftest import SAGA_DEADLINE_S, System, eventually

ORDERS = 300
CLIENTS = 8
VICTIMS = ["order-worker", "bakery", "pay", "mypage"]
TERMINAL = {s.value for s in OrderStatus if is_terminal(s)}


async def customer(system: System, rng: random.Random, outcomes: dict[int, dict], budget: list[int]) -> None:
    while budget:
        budget.pop()
        qty = 50 if rng.random() < 0.1 else rng.randint(1, 3)  # one in ten is over pay's limit
        status, body, _ = await system.request("POST", f"{system.url('gateway')}/orders",
                                               json={"item": "cake", "qty": qty})
        if "id" in body or "orderId" in body:
            order_id = body.get("id", body.get("orderId"))
            outcomes[order_id] = {"status": status, "price": 25000 * qty}
            if status == 201 and rng.random() < 0.15:
                # 202; 409 once the bakery confirmed; 404 before the order worker has seen the order; 503
                # while it restarts: all honest answers.
                cancel, _, _ = await system.request("DELETE", f"{system.url('gateway')}/orders/{order_id}")
                assert cancel in (202, 404, 409, 503), cancel
                outcomes[order_id]["cancel"] = cancel


async def kill_and_restart(system: System, victim: str) -> None:
    system.stop(victim, sig=signal.SIGKILL)
    system.start(victim, **({"BAKERY_AUTO_CONFIRM": "true"} if victim == "bakery" else {}))
    await system.wait_ready(victim)


async def test_every_order_ends_once_and_the_books_balance_while_processes_are_killed(system):
    system.stop("bakery")
    system.start("bakery", BAKERY_AUTO_CONFIRM="true")
    await system.wait_ready("bakery")
    try:
        rng = random.Random(2026)
        outcomes: dict[int, dict] = {}
        # One batch of orders alone, then one batch during each kill and restart.
        for victim in [None, *VICTIMS]:
            budget = list(range(ORDERS // (len(VICTIMS) + 1)))
            chaos = [kill_and_restart(system, victim)] if victim else []
            await asyncio.gather(*(customer(system, rng, outcomes, budget) for _ in range(CLIENTS)), *chaos)

        accepted = [i for i, o in outcomes.items() if o["status"] == 201]
        assert len(accepted) > ORDERS / 2, {o["status"] for o in outcomes.values()}

        async def every_order_ended():
            status, listing, _ = await system.request("GET", f"{system.url('mypage')}/mypages?size=1000")
            if status != 200:
                return None
            rows = {r["orderId"]: r for r in listing["_embedded"]["mypages"] if r["orderId"] in outcomes}
            unfinished = [i for i in outcomes if i not in rows or rows[i]["status"] not in TERMINAL]
            return rows if not unfinished else None

        rows = await eventually(every_order_ended, timeout=SAGA_DEADLINE_S + 90, what="every order ended")
        assert len(rows) == len(outcomes), "a Mypage row is missing or doubled"

        for order_id, outcome in outcomes.items():
            status, ledger, _ = await system.request("GET", f"{system.url('pay')}/payments/{order_id}")
            payments = ledger.get("payments", []) if status == 200 else []
            actions = [p["action"] for p in payments]
            assert actions.count("apply") <= 1 and actions.count("cancel") <= 1, (order_id, actions)
            charged = sum(p["price"] for p in payments if p["action"] == "apply")
            refunded = sum(p["price"] for p in payments if p["action"] == "cancel")
            confirmed = rows[order_id]["status"] == "Confirmed"
            assert charged - refunded == (outcome["price"] if confirmed else 0), (order_id, rows[order_id], payments)
    finally:
        system.stop("bakery")
        system.start("bakery")
        await system.wait_ready("bakery")
