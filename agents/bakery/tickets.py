"""Bakery tickets and the baker's decisions on them. Pure functions."""
from __future__ import annotations

import heapq
import itertools
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, TypeGuard

from agents.events import MAX_ORDER_ID, Event, is_order_id, make_event
from agents.refusal import Refusal

UNPAID = "Unpaid"  # the bakery knows the order, its payment has not come: no ticket to show yet
CONFIRMING = "Confirming"
CONFIRMED = "Confirmed"
REJECTED = "Rejected"
CLOSED = "Closed"
DECISIONS = (CONFIRMED, REJECTED)
DEFAULT_REJECT_REASON = "rejected by the bakery"

_TICKETS = uuid.UUID("0d1f6a52-3c64-4f0e-9a0b-7a7f61f3b0c4")


class DecisionRefused(Refusal):
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


@dataclass(frozen=True)
class Ticket:
    """One order's ticket, as the bakery keeps it; its JSON (`to_json`) is the table's row and what the bakers see.
    Rows written before a field existed still read (`from_json`)."""
    order_id: int
    status: str = CONFIRMING
    opened: bool = True               # False: closed by a cancel before any payment opened it (or not paid yet)
    opened_at: str | None = None      # when its payment came; tickets kept before this have none
    correlation_id: str | None = None  # the order's saga
    reason: str | None = None         # why it was rejected or closed
    item: str | None = None           # what to bake, once the order's placement reached the bakery
    qty: int | None = None

    @property
    def bakery_id(self) -> str:
        return bakery_id_for(self.order_id)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"orderId": self.order_id, "bakeryId": self.bakery_id, "status": self.status,
                               "opened": self.opened}
        for name, value in (("openedAt", self.opened_at), ("correlationId", self.correlation_id),
                            ("reason", self.reason), ("item", self.item), ("qty", self.qty)):
            if value is not None:
                row[name] = value
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Ticket:
        return cls(row["orderId"], row["status"], row.get("opened", True), row.get("openedAt"),
                   row.get("correlationId"), row.get("reason"), row.get("item"), row.get("qty"))


def has_ticket(ticket: Ticket | None) -> TypeGuard[Ticket]:
    """Whether there is a ticket for the bakers: opened by a payment or closed by a cancel, not only known."""
    return ticket is not None and ticket.status != UNPAID


def ticket_of(row: Mapping[str, Any] | None) -> Ticket | None:
    """The ticket a table row holds, if any."""
    return None if row is None else Ticket.from_json(row)


def open_ticket(order_id: int, correlation_id: str | None = None, opened_at: str | None = None,
                known: Ticket | None = None) -> Ticket:
    """The ticket a payment opens, with what the bakery knew of the order before (`known`: what to bake)."""
    return Ticket(order_id, opened_at=opened_at, correlation_id=correlation_id, item=known.item if known else None,
                  qty=known.qty if known else None)


def closed_unopened(order_id: int, reason: str, correlation_id: str | None = None,
                    known: Ticket | None = None) -> Ticket:
    """The ticket of an order cancelled before its payment reached the bakery: closed, so no payment opens one."""
    return Ticket(order_id, CLOSED, opened=False, correlation_id=correlation_id, reason=reason,
                  item=known.item if known else None, qty=known.qty if known else None)


def with_order(ticket: Ticket | None, order_id: int, item: str, qty: int) -> Ticket:
    """What the bakery keeps once the order's placement reaches it: what to bake, on the ticket whenever it came
    (the payment travels on another topic and may come first), or, before the payment, the order alone."""
    known = ticket if ticket is not None else Ticket(order_id, UNPAID, opened=False)
    return replace(known, item=item, qty=qty) if known.item is None else known


def awaits_baker(ticket: Ticket) -> bool:
    return ticket.status == CONFIRMING


def waiting_tickets(tickets: Iterable[Ticket], wanted: int) -> tuple[list[Ticket], int]:
    """The `wanted` tickets that have waited longest for the baker (the oldest orders), and how many wait."""
    counted = 0

    def counting() -> Iterable[Ticket]:
        nonlocal counted
        for ticket in tickets:
            if awaits_baker(ticket):
                counted += 1
                yield ticket
    oldest = heapq.nsmallest(wanted, counting(), key=longest_waiting)
    return oldest, counted


def longest_waiting(ticket: Ticket) -> tuple[str, int]:
    """Tickets ordered by when they opened (order numbers come in blocks per order edge and say nothing of which
    order came first), then by number; a ticket kept before tickets held the time comes first."""
    return ticket.opened_at or "", ticket.order_id


def first_waiting(shares: Iterable[tuple[list[Ticket], int]], wanted: int) -> tuple[list[Ticket], int]:
    """The tickets waiting longest across every worker's share, and how many wait in all."""
    shares = list(shares)
    merged = heapq.merge(*(rows for rows, _ in shares), key=longest_waiting)
    return list(itertools.islice(merged, wanted)), sum(count for _, count in shares)


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


def decide(ticket: Ticket | None, order_id: int, status: str) -> bool:
    """Whether the decision must be announced: False when the ticket already has it (a repeated request)."""
    if ticket is None or not has_ticket(ticket):
        raise NoTicket(f"no bakery ticket for order {order_id}: it is not paid yet, or unknown")
    if ticket.status == status:
        return False
    if ticket.status != CONFIRMING:
        raise TicketDecided(f"order {order_id}'s ticket is already {ticket.status}")
    return True


def applied(ticket: Ticket | None, order_id: int, status: str) -> Ticket:
    """The ticket once the baker's decision was applied, if it was: a cancel that came first wins."""
    if ticket is None or ticket.status != status:
        raise TicketDecided(f"order {order_id}'s ticket is already {ticket and ticket.status}")
    return ticket


def on_payment(ticket: Ticket | None, order_id: int, correlation_id: str | None,
               auto_confirm: bool, paid_at: str | None = None) -> Ticket:
    """The ticket after its order's payment: opened (and confirmed at once with auto-confirm), or as it was."""
    if has_ticket(ticket):
        return ticket
    opened = open_ticket(order_id, correlation_id, paid_at, known=ticket)
    return replace(opened, status=CONFIRMED) if auto_confirm else opened


def on_cancel(ticket: Ticket | None, order_id: int, reason: str, correlation_id: str | None = None) -> Ticket:
    """The ticket after its order was cancelled (or its saga stalled while cancelling).

    A ticket the baker decided stays decided (the cancel came too late, and the bakery answers it by announcing
    that decision again); an order cancelled before its payment reached the bakery gets a closed ticket.
    """
    if ticket is None or not has_ticket(ticket):
        return closed_unopened(order_id, reason, correlation_id, known=ticket)
    return replace(ticket, status=CLOSED, reason=reason) if awaits_baker(ticket) else ticket


def on_refund(ticket: Ticket | None, reason: str) -> Ticket | None:
    """The ticket after its order was refunded: closed unless the baker already decided; as it was with no ticket."""
    if ticket is None or not has_ticket(ticket):
        return ticket
    return replace(ticket, status=CLOSED, reason=reason) if awaits_baker(ticket) else ticket


def on_decision(ticket: Ticket | None, decision: str, reason: str | None) -> Ticket | None:
    """The ticket after the baker's decision: decided if it still awaited one, else as it was (a cancel came
    first, or the baker asked twice); as it was with no ticket."""
    if ticket is None or not has_ticket(ticket):
        return ticket
    return replace(ticket, status=decision, reason=reason or ticket.reason) if awaits_baker(ticket) else ticket


# What a ticket in each final status announces besides its opening.
ANNOUNCED_BY_STATUS = {CONFIRMED: "BakeryConfirmed", REJECTED: "BakeryRejected", CLOSED: "BakeryTicketClosed"}
DEFAULT_REASON = {"BakeryRejected": DEFAULT_REJECT_REASON, "BakeryTicketClosed": "the order was cancelled"}


def announcements(ticket: Ticket | None, correlation_id: str) -> list[Event]:
    """Every event the ticket's state says the bakery decided: its opening, if a payment opened it, and its
    decision, if it has one. Sent after every input about the ticket, so an input seen again (after a crash
    lost what it sent the first time) ends with the same events sent, ids included."""
    if ticket is None or not has_ticket(ticket):
        return []
    about = {"orderId": ticket.order_id, "bakeryId": ticket.bakery_id}
    correlation, cause = ticket.correlation_id or correlation_id, ticket_cause(ticket.order_id)
    said = [make_event("BakeryTicketOpened", correlation_id=correlation, cause=cause, **about)] \
        if ticket.opened else []
    decision = ANNOUNCED_BY_STATUS.get(ticket.status)
    if decision is not None:
        reason = {} if decision == "BakeryConfirmed" else {"reason": ticket.reason or DEFAULT_REASON[decision]}
        said.append(make_event(ANNOUNCED_BY_STATUS[ticket.status], correlation_id=correlation, cause=cause,
                               **about, **reason))
    return said


REFUNDED = "payment refunded"

# A rule: the ticket after one event, from the ticket before it (None: none yet).
Rule = Callable[[Ticket | None, Event], Ticket | None]


def rules(auto_confirm: bool) -> dict[str, Rule]:
    """The bakery's rule for each event it hears, by event type: the one list of them. The bakery worker consumes
    these events, from the topics topics.yaml says carry them to the bakery, and no other."""
    def placed(ticket: Ticket | None, event: Event) -> Ticket | None:
        return with_order(ticket, event["orderId"], event["item"], event["qty"])

    def paid(ticket: Ticket | None, event: Event) -> Ticket | None:
        return on_payment(ticket, event["orderId"], event["correlationId"], auto_confirm, event["occurredAt"])

    def cancelled(ticket: Ticket | None, event: Event) -> Ticket | None:
        return on_cancel(ticket, event["orderId"], event["reason"], event["correlationId"])

    def refunded(ticket: Ticket | None, _: Event) -> Ticket | None:
        return on_refund(ticket, REFUNDED)

    def decided(ticket: Ticket | None, event: Event) -> Ticket | None:
        return on_decision(ticket, event["decision"], event.get("reason"))

    return {"OrderPlaced": placed, "PayApproved": paid, "OrderCancelled": cancelled, "OrderStalled": cancelled,
            "PayCanceled": refunded, "BakerDecided": decided}


def react(by_type: Mapping[str, Rule], ticket: Ticket | None, event: Event) -> tuple[Ticket | None, list[Event]]:
    """The bakery's whole reaction to one event: the ticket to record (None: leave it as it is) and the events
    to send, which follow from the ticket after. For the same ticket and event it is the same every time, event
    ids included."""
    after = by_type[event["type"]](ticket, event)
    return (after if after != ticket else None), announcements(after, event["correlationId"])
