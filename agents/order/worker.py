"""The order worker: keeps each order's lifecycle state in the `orders` table, enforces the saga deadline,
and places the orders other systems request over Kafka.

Every open order has an entry in `order-deadlines`. A timer cancels the orders whose deadline has passed
(the baker never answered, or the edge died between placing the order and charging it); the cancellation
then runs as any other: the bakery closes its ticket, pay refunds what it charged, the order ends Cancelled
— or Confirmed, when the bakery confirmed first.
"""
from __future__ import annotations

import logging
import os
import socket
import time

import aiohttp

from agents import config
from agents.catalog import catalog
from agents.correlation import current as current_correlation
from agents.events import Event, make_event
from agents.order import deadline, intake
from agents.metrics import SAGA_SECONDS
from agents.order.lifecycle import OrderStatus, apply_event, is_terminal, saga_seconds
from agents.order.menu import check_order, menu_from_env
from agents.worker import Worker

log = logging.getLogger(__name__)

worker = Worker("order", service="order-worker")
orders = worker.table("orders")
deadlines = worker.table("order-deadlines")
requests = worker.table("order-requests")
# Orders this process has already cancelled for their deadline, until the cancel comes back to the agent.
_cancelling: set[str] = set()
_pay: list[intake.Pay] = []
MENU = menu_from_env()
WORKER_NAME = f"order-worker {socket.gethostname()}:{os.getpid()}"


async def on_event(event: Event) -> None:
    key = str(event["orderId"])
    before = orders.get(key)
    updated = apply_event(before, event)
    if updated is not None:
        orders[key] = updated
        took = saga_seconds(before, updated)
        if took is not None:
            SAGA_SECONDS.labels(updated["status"]).observe(took)
    # Even for an event seen before: a crash may have kept the order's change and lost the deadline's.
    order = updated or orders.get(key) or {}
    ended = bool(order.get("status")) and is_terminal(OrderStatus(order["status"]))
    # Once a cancel is on its way, Kafka carries it to the end; the deadline has done its work.
    if ended or event["type"] == "OrderCancelled":
        if key in deadlines:
            del deadlines[key]
        _cancelling.discard(key)
    elif key not in deadlines:
        deadlines[key] = deadline.deadline_after(event["occurredAt"], deadline.saga_deadline_s())


worker.consume({event: on_event for topic in catalog().topics_consumed_by("order") if topic.key == "orderId"
                for event in topic.events})


async def pay() -> intake.Pay:
    """The worker's way to pay, made on first use (an aiohttp session belongs to the running loop)."""
    if not _pay:
        _pay.append(intake.Pay(aiohttp.ClientSession()))
        worker.app.on_before_shutdown.connect(_close_pay)
    return _pay[0]


async def _close_pay(*args: object, **kwargs: object) -> None:
    await _pay[0].http.close()


async def on_request_order(command: Event) -> None:
    """Place an order another system asked for: the same checks and saga as `POST /orders`.

    An invalid request raises, and so becomes a dead letter with the reason.
    """
    if requests.get(command["requestId"]) is not None:
        return  # sent again: the order was placed the first time
    order = check_order(command, MENU)
    correlation = command.get("correlationId") or f"request-{command['requestId']}"
    placed = await intake.place(lambda event: worker.emit(event, wait=True), await pay(), order, correlation,
                                WORKER_NAME, command.get("customerId"))
    requests[command["requestId"]] = {"orderId": placed.order_id, "status": placed.status.value,
                                      "reason": placed.reason, "retryAfter": placed.retry_after,
                                      "item": order.item, "qty": order.qty, "price": order.price,
                                      "customerId": command.get("customerId")}
    log.info("request %s placed order %s: %s", command["requestId"], placed.order_id, placed.status.value)


worker.consume({"RequestOrder": on_request_order})


@worker.app.timer(interval=config.env_float("SAGA_SWEEP_S", 1.0))
async def enforce_deadlines() -> None:
    for key in deadline.overdue(list(deadlines.items()), time.time()):
        if key in _cancelling:
            continue
        order = orders.get(key) or {}
        if order.get("status") and is_terminal(OrderStatus(order["status"])):
            continue  # ended already; the agent drops the deadline with the order's next event
        correlation = order.get("correlationId", f"deadline-{key}")
        current_correlation.set(correlation)
        log.warning("order %s passed its saga deadline in %s; cancelling", key, order.get("status"))
        await worker.emit(make_event("OrderCancelled", correlation_id=correlation, cause=f"deadline/{key}",
                                     orderId=int(key), reason=deadline.REASON))
        _cancelling.add(key)
