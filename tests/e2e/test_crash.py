"""The saga's invariants hold while every one of its processes, the Kafka broker included, is killed.

Customers place a few thousand orders through the gateway — one in ten over pay's limit (declined), some
cancelled right after placing, some placed with an Idempotency-Key (through the order worker's request log),
a baker confirming most and rejecting some — and a partner system produces requests for orders to that log
itself, each sent twice and one in ten invalid — while every process is SIGKILLed at a random moment, one at a
time, for several rounds. A supervisor starts each service again, as `bread up` and Kubernetes do; the test starts
the broker again. Afterwards every order must have ended, and order by order the order table, Mypage, the bakery's
tickets and pay's ledger must tell the same story: charged its price if Confirmed, nothing otherwise.
"""
from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from typing import Awaitable

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents.catalog import catalog
from agents.deadletters import original
from agents.events import now
from agents.order import intake
from agents.order.lifecycle import OrderStatus, is_terminal
from ops.cli import SERVICES
from ops.localkafka import wait_until_ready
from tests.e2e.conftest import SAGA_DEADLINE_S, SAGA_REPAIR_S, System, caught_up, events_on, eventually, read_all

ROUNDS = 3
CLIENTS = 8
BAKERS = 4
ORDERS_PER_S = 30           # offered by all customers together, while the processes are killed
PARTNER_REQUESTS_PER_S = 5  # requested over Kafka by a partner system, meanwhile
PAUSE_S = (1.0, 4.0)        # between one process back and the next kill
PRICE = 25000               # a cake
TERMINAL = {s.value for s in OrderStatus if is_terminal(s)}
ONCE_PER_ORDER = ("OrderPlaced", "PayApproved", "PayCanceled", "BakeryTicketOpened", "BakeryConfirmed")


async def customer(system: System, rng: random.Random, answered: list[dict], tickets: asyncio.Queue,
                   placing: asyncio.Event) -> None:
    while placing.is_set():
        qty = 50 if rng.random() < 0.1 else rng.randint(1, 3)  # one in ten is over pay's limit
        keyed = rng.random() < 0.2
        headers = {"Idempotency-Key": uuid.uuid4().hex} if keyed else {}
        try:
            status, body, _ = await system.request("POST", f"{system.url('gateway')}/orders", headers=headers,
                                                   json={"item": "cake", "qty": qty})
        except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError):
            status, body = None, {}  # the gateway itself was killed: an honest failure, nothing promised
        order_id = body.get("id", body.get("orderId")) if isinstance(body, dict) else None
        if status in (201, 202) and order_id is not None:
            answered.append({"id": order_id, "status": status, "price": PRICE * qty, "key": headers})
            tickets.put_nowait(order_id)
            if rng.random() < 0.15:
                try:
                    await system.request("DELETE", f"{system.url('gateway')}/orders/{order_id}")
                except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError):
                    pass  # a cancel that did not get through cancels nothing; the invariants hold either way
        await asyncio.sleep(CLIENTS / ORDERS_PER_S)  # ok-sleep: pacing the offered load, not waiting for a condition


async def partner(system: System, rng: random.Random, sent: dict[str, bool], placing: asyncio.Event) -> None:
    """Another system ordering over Kafka with a plain producer: each request sent twice (the second as a retry
    would be, a moment later), one in ten invalid. `sent`: every request the broker acknowledged, and whether it
    was valid."""
    topic = catalog().topic_of_event("RequestOrder").name
    producer = AIOKafkaProducer(bootstrap_servers=system.broker.bootstrap, acks="all")
    await producer.start()
    try:
        while placing.is_set():
            valid = rng.random() >= 0.1
            request = {"type": "RequestOrder", "requestId": f"partner-{uuid.uuid4().hex}", "item": "cake",
                       "qty": rng.randint(1, 3) if valid else 0}
            for _ in range(2):
                try:
                    await producer.send_and_wait(topic, key=request["requestId"].encode(),
                                                 value=json.dumps(request).encode())
                    sent[request["requestId"]] = valid
                except KafkaError:
                    pass  # the broker was killed meanwhile: not acknowledged, so nothing is promised
            await asyncio.sleep(1 / PARTNER_REQUESTS_PER_S)  # ok-sleep: pacing the offered load
    finally:
        await producer.stop()


async def dead_lettered_requests(system: System) -> set[str]:
    """The request ids of the requests from outside bread that were dead-lettered."""
    topic = catalog().topic_of_event("RequestOrder").name
    return {original(letter)[1].decode() for letter in await events_on(system.broker.bootstrap, "dead-letters")
            if letter["type"] == "DeadLetter" and letter["failedTopic"] == topic and original(letter)[1]}


async def baker(system: System, rng: random.Random, tickets: asyncio.Queue) -> None:
    """Decides every paid order's ticket: confirms most, rejects one in ten; asks again while the ticket is not
    open yet or the bakery is down, until the saga's deadline would have cancelled the order anyway."""
    while True:
        order_id = await tickets.get()
        decision = {"orderId": order_id, "status": "Rejected" if rng.random() < 0.1 else "Confirmed"}
        give_up = time.monotonic() + SAGA_DEADLINE_S
        while time.monotonic() < give_up:
            try:
                status, _, _ = await system.request("POST", f"{system.url('gateway')}/bakeries", json=decision)
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError):
                status = None
            if status in (200, 409):  # decided, or the order was cancelled first
                break
            await asyncio.sleep(0.2)  # ok-sleep: between a baker's attempts while the ticket or bakery is not there


async def healing(system: System, running: asyncio.Event) -> None:
    """What `bread up` does: start every service that died (or hangs) again."""
    while running.is_set():
        await asyncio.to_thread(system.supervisor.tend)  # its liveness checks block
        await asyncio.sleep(0.2)  # ok-sleep: how often the supervisor looks


async def everything_ready(system: System) -> None:
    async def ready() -> bool:
        for service in SERVICES:
            try:
                async with system.http.get(f"{system.url(service)}/health",
                                           timeout=aiohttp.ClientTimeout(total=3)) as response:
                    if response.status != 200:
                        return False
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False
        return True

    await eventually(ready, timeout=180, what="every service ready again")


async def kill(system: System, victim: str) -> None:
    if victim == "kafka":
        broker = system.broker.local
        broker.process.send_signal(signal.SIGKILL)
        broker.process.wait()
        broker.start(log_file=system.broker.log)
        await wait_until_ready(system.broker.bootstrap, timeout=90, process=broker.process,
                               cluster_id=broker.cluster_id)
    else:
        system.processes[victim].send_signal(signal.SIGKILL)
    await everything_ready(system)


async def chaos(system: System, rng: random.Random) -> list[str]:
    victims = [*SERVICES, "kafka"]
    killed = []
    for _ in range(ROUNDS):
        for victim in rng.sample(victims, len(victims)):
            await asyncio.sleep(rng.uniform(*PAUSE_S))  # ok-sleep: a random moment to strike
            await kill(system, victim)
            killed.append(victim)
    return killed


async def _all_in(wanted: set[str], found: Awaitable[set[str]]) -> set[str] | None:
    seen = await found
    return seen if wanted <= seen else None


def latest(messages) -> dict[str, dict]:
    """A compacted changelog's table: the last value of every key still present."""
    table: dict[str, dict] = {}
    for message in messages:
        key = message.key.decode()
        if message.value is None:
            table.pop(key, None)
        else:
            table[key] = json.loads(message.value)
    return table


async def tables(system: System) -> dict[str, dict[str, dict]]:
    found = {}
    for name in ("orders", "order-requests", "bakery-tickets", "mypages"):
        changelog = catalog().tables[name].changelog
        found[name] = latest(await read_all(system.broker.bootstrap, [changelog]))
    return found


def books(system: System) -> dict[int, Counter]:
    """pay's ledger, read from its database: per order, what was charged and refunded, and how often."""
    ledger = sqlite3.connect(f"file:{system.root / 'pay' / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        rows = ledger.execute("SELECT order_id, action, amount FROM payments").fetchall()
    finally:
        ledger.close()
    per_order: dict[int, Counter] = defaultdict(Counter)
    for order_id, action, amount in rows:
        per_order[order_id][action] += amount
        per_order[order_id][f"{action} rows"] += 1
    return per_order


async def test_every_record_tells_the_same_story_of_every_order_while_every_process_is_killed(system):
    seed = time.time_ns() % 2**32
    print(f"the crash test's random seed: {seed}")
    rng = random.Random(seed)
    answered: list[dict] = []
    began = now()  # the orders of this test are those placed from now on
    placing, running = asyncio.Event(), asyncio.Event()
    placing.set()
    running.set()
    healer = asyncio.create_task(healing(system, running))
    bakers: list[asyncio.Task] = []
    try:
        tickets: asyncio.Queue = asyncio.Queue()
        customers = [asyncio.create_task(customer(system, rng, answered, tickets, placing)) for _ in range(CLIENTS)]
        requested: dict[str, bool] = {}
        customers.append(asyncio.create_task(partner(system, rng, requested, placing)))
        bakers.extend(asyncio.create_task(baker(system, rng, tickets)) for _ in range(BAKERS))
        killed = await chaos(system, rng)
        placing.clear()
        await asyncio.gather(*customers)
        # A request for an order that its customer gave up waiting for is still placed: count those too.
        await eventually(lambda: caught_up(system), timeout=120, what="the order worker placing every request")

        async def every_request_placed() -> dict | None:
            found = await tables(system)
            return found if all(intake.is_placed(found["order-requests"].get(r)) for r, valid in requested.items()
                                if valid) else None
        found = await eventually(every_request_placed, timeout=60, what="every valid request placed")
        # Each valid request placed once, each invalid one dead-lettered and never placed, however often sent.
        assert sum(requested.values()) > 50, f"only {sum(requested.values())} requests were sent"
        invalid = {r for r, valid in requested.items() if not valid}
        assert not invalid & set(found["order-requests"])
        letters = await eventually(lambda: _all_in(invalid, dead_lettered_requests(system)), timeout=30,
                                   what="every invalid request dead-lettered")
        assert invalid <= letters

        placed_events = [e for e in await events_on(system.broker.bootstrap, "orders")
                         if e["type"] == "OrderPlaced" and e["occurredAt"] >= began]
        placed = {e["orderId"] for e in placed_events}
        assert len(answered) > 1000, f"only {len(answered)} orders were taken"
        assert {a["id"] for a in answered} <= placed

        still_open: dict[str, tuple] = {}

        async def every_order_ended():
            found = await tables(system)
            still_open.clear()
            for key in map(str, placed):
                order, row = found["orders"].get(key, {}), found["mypages"].get(key, {})
                if order.get("status") not in TERMINAL or row.get("status") not in TERMINAL:
                    still_open[key] = (order.get("status"), row.get("history"), found["bakery-tickets"].get(key))
            return found if not still_open else None

        try:
            found = await eventually(every_order_ended, timeout=SAGA_DEADLINE_S + 8 * SAGA_REPAIR_S + 120,
                                     what="every placed order ended")
        except pytest.fail.Exception:
            pytest.fail(f"{len(still_open)} orders did not end, e.g. {list(still_open.items())[:3]}")
        ledger = books(system)

        # No order id issued twice: every announcement of an order is the same event (a request placed again
        # after a crash repeats its placement), each answered id went to one customer, each keyed request
        # placed one order and no order was placed by two requests.
        by_id: dict[int, set] = defaultdict(set)
        for event in placed_events:
            by_id[event["orderId"]].add((event["eventId"], event["item"], event["qty"]))
        assert [i for i, seen in by_id.items() if len(seen) > 1] == []
        assert len({a["id"] for a in answered}) == len(answered)
        request_orders = [r["orderId"] for r in found["order-requests"].values()]
        assert len(set(request_orders)) == len(request_orders)

        checked = 0
        for order_id in placed:
            key = str(order_id)
            order, row, ticket = found["orders"][key], found["mypages"][key], found["bakery-tickets"].get(key)
            assert order["status"] == row["status"], (order_id, order, row)
            money = ledger.get(order_id, Counter())
            assert money["apply rows"] <= 1 and money["cancel rows"] <= 1, (order_id, money)
            confirmed = order["status"] == "Confirmed"
            price = row["price"]
            assert money["apply"] - money["cancel"] == (price if confirmed else 0), (order_id, order, money, ticket)
            baked = ticket is not None and ticket["status"] == "Confirmed"
            assert baked == confirmed, (order_id, order, ticket)
            steps = Counter(step["event"] for step in row["history"])
            assert all(steps[e] <= 1 for e in ONCE_PER_ORDER), (order_id, steps)
            checked += 1
        for a in answered:
            assert found["orders"][str(a["id"])]["price"] == a["price"]
        outcomes = Counter(found["orders"][str(i)]["status"] for i in placed)
        print(f"crash test: {len(placed)} orders placed ({len(answered)} answered 201/202), kills: "
              f"{Counter(killed)}, outcomes: {dict(outcomes)}, {checked} orders checked against 4 records each")
    finally:
        for task in bakers:
            task.cancel()
        running.clear()
        await asyncio.gather(healer, *bakers, return_exceptions=True)
