"""Bakery tickets and the baker's decisions on them. Pure functions."""
from __future__ import annotations

import heapq
import itertools
import uuid
from typing import Any, Iterable, Mapping

from agents.events import MAX_ORDER_ID, Event, is_order_id, make_event

CONFIRMING = "Confirming"
CONFIRMED = "Confirmed"
REJECTED = "Rejected"
CLOSED = "Closed"
DECISIONS = (CONFIRMED, REJECTED)
DEFAULT_REJECT_REASON = "rejected by the bakery"

_TICKETS = uuid.UUID("0d1f6a52-3c64-4f0e-9a0b-7a7f61f3b0c4")


class DecisionRefused(ValueError):
    """A decision the bakery does not take: not one it takes at all (the message says what is wrong)."""


class NoTicket(DecisionRefused):
    """No ticket to decide on: the order is not paid yet, or unknown."""


class TicketDecided(DecisionRefused):
    """The ticket was decided otherwise already (or closed by a cancel)."""


def bakery_id_for(order_id: int) -> str:
    """A ticket id that is the same every time the same order is paid, so a redelivery opens no second ticket."""
    return str(uuid.uuid5(_TICKETS, str(order_id)))


def ticket_cause(order_id: int) -> str:
    """What every announcement about a ticket derives its event id from: one ticket per order, one decision per
    ticket, so announcing a ticket again, for whatever input, repeats the same events and no consumer sees news."""
    return f"bakery-ticket/{order_id}"


def open_ticket(order_id: int, correlation_id: str | None = None, opened_at: str | None = None) -> dict[str, Any]:
    ticket = {"orderId": order_id, "bakeryId": bakery_id_for(order_id), "status": CONFIRMING, "opened": True}
    if opened_at:
        ticket["openedAt"] = opened_at
    return {**ticket, "correlationId": correlation_id} if correlation_id else ticket


def closed_unopened(order_id: int, reason: str, correlation_id: str | None = None) -> dict[str, Any]:
    """The ticket of an order cancelled before its payment reached the bakery: closed, so no payment opens one."""
    return {**open_ticket(order_id, correlation_id), "status": CLOSED, "opened": False, "reason": reason}


def awaits_baker(ticket: Mapping[str, Any]) -> bool:
    return ticket.get("status") == CONFIRMING


def waiting_tickets(tickets: Iterable[Mapping[str, Any]], wanted: int) -> tuple[list[dict[str, Any]], int]:
    """The `wanted` tickets that have waited longest for the baker (the oldest orders), and how many wait."""
    counted = 0

    def counting() -> Iterable[Mapping[str, Any]]:
        nonlocal counted
        for ticket in tickets:
            if awaits_baker(ticket):
                counted += 1
                yield ticket
    oldest = heapq.nsmallest(wanted, counting(), key=longest_waiting)
    return [dict(t) for t in oldest], counted


def longest_waiting(ticket: Mapping[str, Any]) -> tuple[str, int]:
    """Tickets ordered by when they opened (order numbers come in blocks per order edge and say nothing of which
    order came first), then by number; a ticket kept before tickets held the time comes first."""
    return ticket.get("openedAt") or "", ticket["orderId"]


def first_waiting(shares: Iterable[tuple[list[dict[str, Any]], int]], wanted: int) -> dict[str, Any]:
    """The tickets waiting longest across every worker's share, and how many wait in all."""
    shares = list(shares)
    merged = heapq.merge(*(rows for rows, _ in shares), key=longest_waiting)
    return {"tickets": list(itertools.islice(merged, wanted)), "total": sum(count for _, count in shares)}


def parse_decision(body: Any) -> tuple[int, str, str | None]:
    """Parse the baker's request {"orderId", "status", "reason"?} into (orderId, status, reason)."""
    if not isinstance(body, Mapping):
        raise DecisionRefused('the body must be a JSON object like {"orderId": 1, "status": "Confirmed"}')
    order_id, status, reason = body.get("orderId"), body.get("status"), body.get("reason")
    if not is_order_id(order_id):
        raise DecisionRefused(f"'orderId' must be a whole number from 1 to {MAX_ORDER_ID}")
    if status not in DECISIONS:
        raise DecisionRefused(f"'status' must be one of {', '.join(DECISIONS)}")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise DecisionRefused("'reason', when given, must be text of at most 500 characters")
    if status == REJECTED:
        reason = f"{DEFAULT_REJECT_REASON}: {reason}" if reason else DEFAULT_REJECT_REASON
    return order_id, status, reason


def decide(ticket: Mapping[str, Any] | None, order_id: int, status: str) -> bool:
    """Whether the decision must be announced: False when the ticket already has it (a repeated request)."""
    if ticket is None:
        raise NoTicket(f"no bakery ticket for order {order_id}: it is not paid yet, or unknown")
    if ticket["status"] == status:
        return False
    if ticket["status"] != CONFIRMING:
        raise TicketDecided(f"order {order_id}'s ticket is already {ticket['status']}")
    return True


def on_payment(ticket: Mapping[str, Any] | None, order_id: int, correlation_id: str | None,
               auto_confirm: bool, paid_at: str | None = None) -> dict[str, Any]:
    """The ticket after its order's payment: opened (and confirmed at once with auto-confirm), or as it was."""
    if ticket is not None:
        return dict(ticket)
    opened = open_ticket(order_id, correlation_id, paid_at)
    return {**opened, "status": CONFIRMED} if auto_confirm else opened


def on_cancel(ticket: Mapping[str, Any] | None, order_id: int, reason: str,
              correlation_id: str | None = None) -> dict[str, Any]:
    """The ticket after its order was cancelled (or its saga stalled while cancelling).

    A ticket the baker decided stays decided (the cancel came too late, and the bakery answers it by announcing
    that decision again); an order cancelled before its payment reached the bakery gets a closed ticket.
    """
    if ticket is None:
        return closed_unopened(order_id, reason, correlation_id)
    if ticket["status"] == CONFIRMING:
        return {**ticket, "status": CLOSED, "reason": reason}
    return dict(ticket)


def on_refund(ticket: Mapping[str, Any] | None, reason: str) -> dict[str, Any] | None:
    """The ticket after its order was refunded: closed unless the baker already decided; None with no ticket."""
    if ticket is None:
        return None
    if ticket["status"] == CONFIRMING:
        return {**ticket, "status": CLOSED, "reason": reason}
    return dict(ticket)


def on_decision(ticket: Mapping[str, Any] | None, decision: str, reason: str | None) -> dict[str, Any] | None:
    """The ticket after the baker's decision: decided if it still awaited one, else as it was (a cancel came
    first, or the baker asked twice); None with no ticket."""
    if ticket is None:
        return None
    if ticket["status"] == CONFIRMING:
        return {**ticket, "status": decision, **({"reason": reason} if reason else {})}
    return dict(ticket)


# What a ticket in each final status announces besides its opening.
ANNOUNCED_BY_STATUS = {CONFIRMED: "BakeryConfirmed", REJECTED: "BakeryRejected", CLOSED: "BakeryTicketClosed"}
DEFAULT_REASON = {"BakeryRejected": DEFAULT_REJECT_REASON, "BakeryTicketClosed": "the order was cancelled"}


def announcements(ticket: Mapping[str, Any] | None, correlation_id: str) -> list[Event]:
    """Every event the ticket's state says the bakery decided: its opening, if a payment opened it, and its
    decision, if it has one. Sent after every input about the ticket, so an input seen again (after a crash
    lost what it sent the first time) ends with the same events sent, ids included."""
    if ticket is None:
        return []
    about = {"orderId": ticket["orderId"], "bakeryId": ticket["bakeryId"]}
    correlation, cause = ticket.get("correlationId") or correlation_id, ticket_cause(ticket["orderId"])
    said = [make_event("BakeryTicketOpened", correlation_id=correlation, cause=cause, **about)] \
        if ticket.get("opened", True) else []
    decision = ANNOUNCED_BY_STATUS.get(ticket["status"])
    if decision is not None:
        reason = {} if decision == "BakeryConfirmed" else {"reason": ticket.get("reason") or DEFAULT_REASON[decision]}
        said.append(make_event(ANNOUNCED_BY_STATUS[ticket["status"]], correlation_id=correlation, cause=cause,
                               **about, **reason))
    return said


REFUNDED = "payment refunded"


def react(ticket: Mapping[str, Any] | None, event: Event,
          auto_confirm: bool) -> tuple[dict[str, Any] | None, list[Event]]:
    """The bakery's whole reaction to one event: the ticket to record (None: leave it as it is) and the events
    to send. For the same ticket and event it is the same every time, event ids included."""
    order_id, correlation = event["orderId"], event["correlationId"]
    after: dict[str, Any] | None
    if event["type"] == "PayApproved":
        after = on_payment(ticket, order_id, correlation, auto_confirm, event["occurredAt"])
    elif event["type"] in ("OrderCancelled", "OrderStalled"):
        after = on_cancel(ticket, order_id, event["reason"], correlation)
    elif event["type"] == "PayCanceled":
        after = on_refund(ticket, REFUNDED)
    elif event["type"] == "BakerDecided":
        after = on_decision(ticket, event["decision"], event.get("reason"))
    else:
        raise ValueError(f"the bakery does not handle {event['type']}")
    return (after if after != ticket else None), announcements(after, correlation)
