"""The order worker: keeps each order's lifecycle state in the `orders` table, enforces the saga's deadlines,
and places the orders other systems request over Kafka.

Every open order has an entry in `order-deadlines`. A timer cancels the orders whose deadline has passed
(the baker never answered, or the edge died between placing the order and charging it); the cancellation
then runs as any other: the bakery closes its ticket, pay refunds what it charged, the order ends Cancelled
— or Confirmed, when the bakery confirmed first. An order still open a while after its cancel has stalled:
the timer announces it, and pay and the bakery announce their decisions again (agents/order/deadline.py).

A request over Kafka is placed once: its order number is on record (and acknowledged) before the order is
announced, so a request seen again after a crash continues or repeats that placement, never makes another.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import cast

import aiohttp
from aiokafka.errors import KafkaError

from agents.catalog import catalog
from agents.correlation import current as current_correlation
from agents.events import Event
from agents.order import deadline, intake
from agents.runtime.metrics import SAGA_SECONDS
from agents.order.lifecycle import OrderStatus, apply_event, is_terminal, saga_seconds
from agents.order.menu import OrderRequest, check_order
from agents.runtime.pay_client import PayClient
from agents.runtime.worker import Worker, record

log = logging.getLogger(__name__)

worker = Worker("order", service="order-worker")
orders = worker.table("orders")
deadlines = worker.table("order-deadlines")
requests = worker.table("order-requests")
# Requests whose placement someone waits for (the edge, for an order with an Idempotency-Key), by request id.
_awaited_placements: dict[str, list[asyncio.Future]] = {}
# The reminder this process has sent for an order's current deadline, until the agent moves the deadline on.
_reminded: dict[str, deadline.Deadline] = {}
_pay: list[PayClient] = []
WORKER_NAME = f"order-worker {socket.gethostname()}:{os.getpid()}"


def ended(order: dict | None) -> bool:
    return bool(order and order.get("status")) and is_terminal(OrderStatus(order["status"]))


async def on_event(event: Event) -> None:
    key = str(event["orderId"])
    before = orders.get(key)
    updated = apply_event(before, event)
    if updated is not None:
        took = saga_seconds(before, updated)
        if took is not None:
            SAGA_SECONDS.labels(updated["status"]).observe(took)
    order = updated or before or {}
    record(orders, key, order or None)
    current = deadline.as_deadline(deadlines.get(key))
    due = deadline.deadline_after_event(current, event, order.get("status"), ended(order),
                                        worker.settings.saga_deadline_s, worker.settings.saga_repair_s)
    if due != current:
        _reminded.pop(key, None)
    if due is None and key in deadlines:
        del deadlines[key]
    elif due != current or updated is None:  # seen before: the first time's write may not have reached Kafka
        record(deadlines, key, due)

worker.consume({event: on_event for topic in catalog().topics_consumed_by("order") if topic.key == "orderId"
                for event in topic.events})


async def pay() -> PayClient:
    """The worker's way to pay, made on first use (an aiohttp session belongs to the running loop)."""
    if not _pay:
        _pay.append(PayClient.from_settings(aiohttp.ClientSession(), worker.settings))
        worker.app.on_before_shutdown.connect(_close_pay)
    return _pay[0]


async def _close_pay(*args: object, **kwargs: object) -> None:
    await _pay[0].http.close()


async def on_request_order(command: Event) -> None:
    """Place an order another system asked for: the same checks and saga as `POST /orders`.

    An invalid request raises, and so becomes a dead letter with the reason. Outputs follow from the request's
    record: seen again, a request placed before announces that placement again (the same event ids); one
    whose placement a crash interrupted goes on with the order number on record.
    """
    request_id = command["requestId"]
    order = check_order(command, worker.settings.menu)
    correlation = command.get("correlationId") or f"request-{request_id}"
    customer = command.get("customerId")
    placed = requests.get(request_id)
    if placed is None:
        order_id = await intake.reserve(emit_acknowledged, correlation, WORKER_NAME)
        placed = {"orderId": order_id, "status": OrderStatus.ORDERED.value, "reason": None, "retryAfter": None,
                  "item": order.item, "qty": order.qty, "price": order.price, "customerId": customer}
        requests[request_id] = placed
        await worker.flush()  # on record before the order is announced: a crash from here on places no other
    cause = f"request/{request_id}"
    if placed["status"] == OrderStatus.ORDERED.value:
        placement = await intake.place_reserved(emit_acknowledged, await pay(), order, placed["orderId"],
                                                correlation, customer, cause)
        requests[request_id] = {**placed, "status": placement.status.value, "reason": placement.reason,
                                "retryAfter": placement.retry_after}
        log.info("request %s placed order %s: %s", request_id, placement.order_id, placement.status.value)
        _tell_who_waits(request_id)
        return
    record(requests, request_id, placed)
    _tell_who_waits(request_id)
    placement = intake.Placement(placed["orderId"], OrderStatus(placed["status"]), placed["reason"],
                                 placed["retryAfter"])
    recorded = OrderRequest(placed["item"], placed["qty"], placed["price"])
    for event in (intake.placed_event(placed["orderId"], recorded, correlation, placed["customerId"], cause),
                  intake.outcome_event(placement, recorded, correlation, cause)):
        if event is not None:
            await emit_acknowledged(event)


async def placement(request_id: str, within_s: float) -> None:
    """Return once the request is placed, or after `within_s` seconds."""
    if intake.is_placed(requests.get(request_id)):
        return
    waiting = asyncio.get_running_loop().create_future()
    _awaited_placements.setdefault(request_id, []).append(waiting)
    try:
        await asyncio.wait_for(waiting, within_s)
    except asyncio.TimeoutError:
        pass
    finally:
        others = [w for w in _awaited_placements.pop(request_id, []) if w is not waiting]
        if others:
            _awaited_placements[request_id] = others


def _tell_who_waits(request_id: str) -> None:
    for waiting in _awaited_placements.pop(request_id, []):
        if not waiting.done():
            waiting.set_result(None)


async def emit_acknowledged(event: Event) -> int:
    return cast(int, await worker.emit(event, wait=True))


worker.consume({"RequestOrder": on_request_order})


@worker.app.timer(interval=worker.settings.saga_sweep_s)
async def enforce_deadlines() -> None:
    stored = ((key, deadline.as_deadline(due)) for key, due in list(deadlines.items()))
    for key, due in deadline.overdue(stored, time.time()):
        order = orders.get(key) or {}
        if _reminded.get(key) == due or ended(order):
            continue  # reminded already, or ended: the agent moves the deadline on with the order's next event
        reminder = deadline.reminder(int(key), due, order)
        current_correlation.set(reminder["correlationId"])
        log.warning("order %s passed its %s deadline in %s; announcing %s", key, due["then"], order.get("status"),
                    reminder["type"])
        try:
            await worker.emit(reminder)
        except KafkaError as exc:  # the broker is away: the next sweep announces it again
            log.warning("could not announce %s for order %s: %s", reminder["type"], key, exc)
            return
        _reminded[key] = due
