"""Bakery tickets and the baker's decisions on them. Pure functions."""
from __future__ import annotations

import uuid
from typing import Any, Mapping

from agents.events import MAX_ORDER_ID, is_order_id

CONFIRMING = "Confirming"
CONFIRMED = "Confirmed"
REJECTED = "Rejected"
CLOSED = "Closed"
DECISIONS = (CONFIRMED, REJECTED)
# The baker's decision, and the event that announces it.
EVENT_OF_DECISION = {CONFIRMED: "BakeryConfirmed", REJECTED: "BakeryRejected"}
DEFAULT_REJECT_REASON = "rejected by the bakery"

_TICKETS = uuid.UUID("0d1f6a52-3c64-4f0e-9a0b-7a7f61f3b0c4")


class DecisionRefused(ValueError):
    """The baker asked for something the ticket does not allow; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def bakery_id_for(order_id: int) -> str:
    """A ticket id that is the same every time the same order is paid, so a redelivery opens no second ticket."""
    return str(uuid.uuid5(_TICKETS, str(order_id)))


def open_ticket(order_id: int, correlation_id: str | None = None) -> dict[str, Any]:
    ticket = {"orderId": order_id, "bakeryId": bakery_id_for(order_id), "status": CONFIRMING}
    return {**ticket, "correlationId": correlation_id} if correlation_id else ticket


def check_decision(body: Any) -> tuple[int, str, str | None]:
    """Parse the baker's request {"orderId", "status", "reason"?} into (orderId, status, reason)."""
    if not isinstance(body, Mapping):
        raise DecisionRefused('the body must be a JSON object like {"orderId": 1, "status": "Confirmed"}', 400)
    order_id, status, reason = body.get("orderId"), body.get("status"), body.get("reason")
    if not is_order_id(order_id):
        raise DecisionRefused(f"'orderId' must be a whole number from 1 to {MAX_ORDER_ID}", 400)
    if status not in DECISIONS:
        raise DecisionRefused(f"'status' must be one of {', '.join(DECISIONS)}", 400)
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise DecisionRefused("'reason', when given, must be text of at most 500 characters", 400)
    if status == REJECTED:
        reason = f"{DEFAULT_REJECT_REASON}: {reason}" if reason else DEFAULT_REJECT_REASON
    return order_id, status, reason


def decide(ticket: Mapping[str, Any] | None, order_id: int, status: str) -> bool:
    """Whether the decision must be announced: False when the ticket already has it (a repeated request)."""
    if ticket is None:
        raise DecisionRefused(f"no bakery ticket for order {order_id}: it is not paid yet, or unknown", 404)
    if ticket["status"] == status:
        return False
    if ticket["status"] != CONFIRMING:
        raise DecisionRefused(f"order {order_id}'s ticket is already {ticket['status']}", 409)
    return True


def after_event(ticket: Mapping[str, Any] | None, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ticket after one of the bakery's own events; None when nothing changes."""
    if event["type"] == "BakeryTicketOpened" and ticket is None:
        return open_ticket(event["orderId"])
    for event_type, status in (("BakeryConfirmed", CONFIRMED), ("BakeryRejected", REJECTED),
                               ("BakeryTicketClosed", CLOSED)):
        if event["type"] == event_type and (ticket is None or ticket["status"] != status):
            return {**(ticket or open_ticket(event["orderId"])), "status": status}
    return None


def close_on_refund(ticket: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ticket after its order was refunded: closed unless the baker already confirmed; None if unchanged."""
    if ticket is None or ticket["status"] != CONFIRMING:
        return None
    return {**ticket, "status": CLOSED}


def close_on_cancel(ticket: Mapping[str, Any] | None, order_id: int) -> dict[str, Any] | None:
    """The ticket after its order was cancelled; None when the cancel changes nothing.

    A ticket the baker confirmed stays confirmed (the cancel came too late); an order cancelled before its
    payment reached the bakery gets a closed ticket, so the payment opens none later.
    """
    if ticket is None:
        return {**open_ticket(order_id), "status": CLOSED}
    if ticket["status"] != CONFIRMING:
        return None
    return {**ticket, "status": CLOSED}
