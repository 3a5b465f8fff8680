"""The order lifecycle: its states, the transitions allowed between them, and how events move an order.

Events about one order travel on several topics, so they can arrive in any order (a bakery ticket may be
seen before the payment that caused it). An event therefore moves an order to its state only when that
state is reachable from where the order is; a late event still contributes its data.
"""
from __future__ import annotations

from enum import Enum
from functools import lru_cache
from typing import Any, Mapping


class OrderStatus(str, Enum):
    ORDERED = "Ordered"
    PAID = "Paid"
    CONFIRMING = "Confirming"
    CONFIRMED = "Confirmed"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"


S = OrderStatus
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    S.ORDERED: frozenset({S.PAID, S.REJECTED}),
    S.PAID: frozenset({S.CONFIRMING, S.CANCELLED}),
    S.CONFIRMING: frozenset({S.CONFIRMED, S.CANCELLED}),
    S.CONFIRMED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
}

# The state each event announces.
STATUS_AFTER: Mapping[str, OrderStatus] = {
    "OrderPlaced": S.ORDERED,
    "OrderRejected": S.REJECTED,
    "PayApproved": S.PAID,
    "PayCanceled": S.CANCELLED,
    "BakeryTicketOpened": S.CONFIRMING,
    "BakeryConfirmed": S.CONFIRMED,
}


def is_terminal(status: OrderStatus) -> bool:
    return not TRANSITIONS[status]


@lru_cache(maxsize=None)
def reachable(source: OrderStatus, target: OrderStatus) -> bool:
    """Whether `target` lies on some path of allowed transitions from `source` (one step or more)."""
    frontier, seen = [source], set()
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return False


def next_status(current: OrderStatus | None, event_type: str) -> OrderStatus | None:
    """The status after `event_type`: the announced one if reachable from `current`, else `current`."""
    announced = STATUS_AFTER.get(event_type)
    if announced is None:
        return current
    if current is None or reachable(current, announced):
        return announced
    return current


# Event fields an order record keeps (the envelope and `type` are bookkeeping, not order data).
ORDER_FIELDS = ("orderId", "item", "qty", "price", "paymentId", "bakeryId")
MAX_SEEN_EVENTS = 32


def apply_event(order: Mapping[str, Any] | None, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fold one event into an order record; None when the event was already applied (a redelivery)."""
    order = dict(order or {})
    seen = list(order.get("eventIds", []))
    if event["eventId"] in seen:
        return None
    current = OrderStatus(order["status"]) if order.get("status") else None
    status = next_status(current, event["type"])
    for field in ORDER_FIELDS:
        if field in event:
            order[field] = event[field]
    if status is not None:
        order["status"] = status.value
        # The reason an order ended is the one its ending event gave, not a later event's.
        if status != current and is_terminal(status) and "reason" in event:
            order["reason"] = event["reason"]
    order["updatedAt"] = event["occurredAt"]
    order["eventIds"] = (seen + [event["eventId"]])[-MAX_SEEN_EVENTS:]
    return order


def public_view(order: Mapping[str, Any]) -> dict[str, Any]:
    """The order as the API shows it (without bookkeeping)."""
    return {
        "id": order.get("orderId"),
        "item": order.get("item"),
        "qty": order.get("qty"),
        "price": order.get("price"),
        "status": order.get("status"),
        **({"reason": order["reason"]} if order.get("reason") else {}),
    }
