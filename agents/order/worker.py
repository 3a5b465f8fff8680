"""The order worker: keeps each order's lifecycle state in the `orders` table and enforces the saga deadline.

Every open order has an entry in `order-deadlines`. A timer cancels the orders whose deadline has passed
(the baker never answered, or the edge died between placing the order and charging it); the cancellation
then runs as any other: the bakery closes its ticket, pay refunds what it charged, the order ends Cancelled
— or Confirmed, when the bakery confirmed first.
"""
from __future__ import annotations

import logging
import time

from agents import config
from agents.catalog import catalog
from agents.events import Event, make_event
from agents.order import deadline
from agents.order.lifecycle import OrderStatus, apply_event, is_terminal
from agents.worker import Worker

log = logging.getLogger(__name__)

worker = Worker("order", service="order-worker")
orders = worker.table("orders")
deadlines = worker.table("order-deadlines")
# Orders this process has already cancelled for their deadline, until the cancel comes back to the agent.
_cancelling: set[str] = set()


async def on_event(event: Event) -> None:
    key = str(event["orderId"])
    updated = apply_event(orders.get(key), event)
    if updated is None:
        return
    orders[key] = updated
    ended = is_terminal(OrderStatus(updated["status"]))
    # Once a cancel is on its way, Kafka carries it to the end; the deadline has done its work.
    if ended or event["type"] == "OrderCancelled":
        if key in deadlines:
            del deadlines[key]
        _cancelling.discard(key)
    elif key not in deadlines:
        deadlines[key] = deadline.deadline_after(event["occurredAt"], deadline.saga_deadline_s())


worker.consume({event: on_event for topic in catalog().topics_consumed_by("order") for event in topic.events})


@worker.app.timer(interval=config.env_float("SAGA_SWEEP_S", 1.0))
async def enforce_deadlines() -> None:
    for key in deadline.overdue(list(deadlines.items()), time.time()):
        if key in _cancelling:
            continue
        order = orders.get(key) or {}
        correlation = order.get("correlationId", f"deadline-{key}")
        log.warning("order %s passed its saga deadline in %s; cancelling [correlation %s]",
                    key, order.get("status"), correlation)
        await worker.emit(make_event("OrderCancelled", correlation_id=correlation, cause=f"deadline/{key}",
                                     orderId=int(key), reason=deadline.REASON))
        _cancelling.add(key)
