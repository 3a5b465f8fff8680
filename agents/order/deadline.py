"""The saga's deadlines: no order stays unfinished. Pure functions.

Every open order has a deadline. Past the first, the order is cancelled: the bakery closes its ticket (or
announces the decision it took already), pay refunds what it charged, and the order ends. An order still not
ended a while after its cancel has stalled: an event, or its answer, was lost. Past that second deadline the
order worker announces `OrderStalled`, pay and the bakery announce again what they decided, and the order
ends; the repair repeats, each time waiting twice as long, until it does.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Iterable, Mapping

from agents.events import Event, make_event
from agents.order.lifecycle import Deadline, OrderRecord, OrderStatus, apply_event, is_terminal

REASON = "saga deadline passed"
STALLED = "the saga stalled while cancelling; asking pay and the bakery to announce their decisions again"
CANCEL, REPAIR = "cancel", "repair"
MAX_DOUBLINGS = 5  # a stalled order is asked again at most every 32 repair periods


def deadline_after(occurred_at: str, seconds: float) -> float:
    """The time (epoch seconds) `seconds` after an event."""
    return datetime.fromisoformat(occurred_at).timestamp() + seconds


def deadline_after_event(current: Deadline | None, event: Mapping[str, Any], status: str | None, ended: bool,
                         deadline_s: float, repair_s: float) -> Deadline | None:
    """The deadline an order has once `event` is applied; None when it has ended."""
    if ended:
        return None
    if event["type"] == "OrderStalled":
        attempt = event["attempt"] + 1
        if current is not None and current.then == REPAIR and current.attempt >= attempt:
            return current  # an older repair, seen again
        wait = repair_s * 2 ** min(attempt, MAX_DOUBLINGS)
        return Deadline(deadline_after(event["occurredAt"], wait), REPAIR, attempt)
    if (event["type"] == "OrderCancelled" or status == "Cancelling") and (current is None or current.then == CANCEL):
        return Deadline(deadline_after(event["occurredAt"], repair_s), REPAIR, 0)
    if current is not None:
        return current
    return Deadline(deadline_after(event["occurredAt"], deadline_s), CANCEL, 0)


def has_ended(order: OrderRecord | None) -> bool:
    return order is not None and bool(order.status) and is_terminal(OrderStatus(order.status))


def deadline_of(order: OrderRecord | None, deadline_s: float, repair_s: float) -> Deadline | None:
    """An order's deadline: none once it has ended; the one its record keeps; for a record kept before records
    held their deadline, one from its own times — its cancel when it began, its repair when it began cancelling."""
    if order is None or has_ended(order):
        return None
    if order.deadline is not None:
        return order.deadline
    if order.status == OrderStatus.CANCELLING.value and order.updated_at:
        return Deadline(deadline_after(order.updated_at, repair_s), REPAIR, 0)
    began = order.placed_at or order.updated_at
    return Deadline(deadline_after(began, deadline_s), CANCEL, 0) if began else None


def fold(order: OrderRecord | None, event: Mapping[str, Any], deadline_s: float,
         repair_s: float) -> OrderRecord | None:
    """The order worker's record of an order after an event: its lifecycle and story, and the deadline it has
    then (none once it has ended); None when the event was applied before."""
    updated = apply_event(order, event)
    if updated is None:
        return None
    due = deadline_after_event(deadline_of(order, deadline_s, repair_s), event, updated.status,
                               has_ended(updated), deadline_s, repair_s)
    return replace(updated, deadline=due)


def overdue(deadlines: Iterable[tuple[str, Deadline]], now: float) -> list[tuple[str, Deadline]]:
    """The orders whose deadline has passed, with that deadline."""
    return [(order_id, deadline) for order_id, deadline in deadlines if deadline.at <= now]


def reminder(order_id: int, deadline: Deadline, order: OrderRecord) -> Event:
    """What the order worker announces when an order's deadline passes: its cancel, or past the second
    deadline, that it stalled. Its id derives from the order and the attempt, so announcing it again (the
    timer fires again before the agent has seen it, or after a restart) repeats the same event."""
    correlation = order.correlation_id or f"deadline-{order_id}"
    if deadline.then == CANCEL:
        return make_event("OrderCancelled", correlation_id=correlation, cause=f"deadline/{order_id}",
                          orderId=order_id, reason=REASON)
    return make_event("OrderStalled", correlation_id=correlation, cause=f"stalled/{order_id}/{deadline.attempt}",
                      orderId=order_id, status=order.status or "unknown", attempt=deadline.attempt, reason=STALLED)
