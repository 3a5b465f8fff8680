"""The order lifecycle: its states, the transitions allowed between them, and how events move an order.

Events about one order travel on several topics, so they arrive in any order (a bakery ticket may be seen
before the payment that caused it, a void before the rejection that caused it). An order's status therefore
follows from which events were seen, not from the order they came in (`OUTCOME_RULES`): every fold of the
same events ends with the same status. The transitions below are the paths an order can take.

    Ordered ──► Paid ──► Confirming ──► Confirmed
       │          │          │   ▲
       │          └──────────┴───┼──► Cancelling ──► Cancelled   (customer, bakery rejection, saga deadline)
       │                         └────────┘                      (the bakery confirmed before it saw the cancel)
       ├──► Rejected        (pay unreachable or too slow at intake, PAY_FALLBACK=reject)
       ├──► PaymentFailed   (pay declined the charge)
       └──► PaymentPending ──► Paid, PaymentFailed or Cancelling   (PAY_FALLBACK=defer: pay charges later)

    Confirmed ──► Refunded  (after the saga: an admin gave the money back, and said why)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any, Iterable, Mapping

from agents.events import Event, make_event
from agents.refusal import Refusal


class OrderStatus(str, Enum):
    ORDERED = "Ordered"
    PAYMENT_PENDING = "PaymentPending"
    PAID = "Paid"
    CONFIRMING = "Confirming"
    CONFIRMED = "Confirmed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"
    PAYMENT_FAILED = "PaymentFailed"
    REFUNDED = "Refunded"


S = OrderStatus
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    S.ORDERED: frozenset({S.PAYMENT_PENDING, S.PAID, S.REJECTED, S.PAYMENT_FAILED, S.CANCELLING}),
    S.PAYMENT_PENDING: frozenset({S.PAID, S.PAYMENT_FAILED, S.CANCELLING}),
    S.PAID: frozenset({S.CONFIRMING, S.CANCELLING, S.CANCELLED}),
    S.CONFIRMING: frozenset({S.CONFIRMED, S.CANCELLING, S.CANCELLED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.CONFIRMED}),
    S.CONFIRMED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.PAYMENT_FAILED: frozenset(),
    S.REFUNDED: frozenset(),
}
# Where the saga ends: nothing more happens to an order by itself (no deadline, the saga's time is taken).
# A confirmed order may still be refunded later, but only by a person.
ENDS = frozenset({S.CONFIRMED, S.CANCELLED, S.REJECTED, S.PAYMENT_FAILED, S.REFUNDED})

# The state each event announces; events not listed (a ticket closed) change no state.
STATUS_AFTER: Mapping[str, OrderStatus] = {
    "OrderPlaced": S.ORDERED,
    "OrderRejected": S.REJECTED,
    "OrderCancelled": S.CANCELLING,
    "PaymentRequested": S.PAYMENT_PENDING,
    "PayApproved": S.PAID,
    "PayRejected": S.PAYMENT_FAILED,
    "PayCanceled": S.CANCELLED,
    "PayVoided": S.CANCELLED,
    "BakeryTicketOpened": S.CONFIRMING,
    "BakeryConfirmed": S.CONFIRMED,
    "BakeryRejected": S.CANCELLING,
}


# The states an order reaches only when something went wrong, and the events announcing them carry a reason.
OFF_PATH = frozenset({S.CANCELLING, S.REJECTED, S.PAYMENT_FAILED})


def is_terminal(status: OrderStatus) -> bool:
    return status in ENDS


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


# How an order stands, from the events seen about it — whatever order they arrived in, so every fold of the
# same events (the order worker's, Mypage's) ends the same: the first rule whose events were all seen decides.
# An intake rejection or a declined payment ends the order whatever else happened (pay voids any charge); a
# refund after the bakery confirmed ends it Refunded (the saga never refunds a confirmed order, so only a
# person's refund does that); the bakery's confirmation outlasts a cancel that came too late; a refund or void
# ends a cancel.
OUTCOME_RULES: tuple[tuple[frozenset[str], OrderStatus], ...] = (
    (frozenset({"OrderRejected"}), S.REJECTED),
    (frozenset({"PayRejected"}), S.PAYMENT_FAILED),
    (frozenset({"BakeryConfirmed", "PayCanceled"}), S.REFUNDED),
    (frozenset({"BakeryConfirmed"}), S.CONFIRMED),
    (frozenset({"PayCanceled"}), S.CANCELLED),
    (frozenset({"PayVoided"}), S.CANCELLED),
    (frozenset({"OrderCancelled"}), S.CANCELLING),
    (frozenset({"BakeryRejected"}), S.CANCELLING),
    (frozenset({"BakeryTicketOpened"}), S.CONFIRMING),
    (frozenset({"PayApproved"}), S.PAID),
    (frozenset({"PaymentRequested"}), S.PAYMENT_PENDING),
    (frozenset({"OrderPlaced"}), S.ORDERED),
)


def status_of(seen: Iterable[str]) -> OrderStatus | None:
    """The status an order has once the events of these types were seen; None before any that tells."""
    seen = set(seen)
    return next((status for events, status in OUTCOME_RULES if events <= seen), None)


class CancelRefused(Refusal):
    """The customer may not cancel the order in its current state."""


CANCELLED_BY_CUSTOMER = "cancelled by the customer"


def why_not_cancellable(status: OrderStatus) -> str | None:
    """Why a cancel is refused: once the bakery confirmed the order or it ended (a cancel under way may be asked
    again); None while it may be cancelled."""
    if status == S.CONFIRMED:
        return "the bakery has confirmed the order; it can no longer be cancelled"
    if is_terminal(status):
        return f"the order has ended as {status.value}"
    return None


def may_cancel(status: str | None) -> bool:
    """Whether a cancel would be taken now (what a page offers; the order edge decides)."""
    try:
        return why_not_cancellable(OrderStatus(status)) is None
    except ValueError:
        return False


def customer_cancel(order: Mapping[str, Any], correlation: str) -> Event | None:
    """What the customer's cancel of `order` (as the API shows it) announces: OrderCancelled, in the order's own
    saga whoever asks; None when a cancel is under way already (asked again). CancelRefused when it may not be.
    A cancel that crosses the bakery's confirmation on its way is answered by the bakery with that confirmation."""
    order_id, status = order["id"], OrderStatus(order["status"])
    why = why_not_cancellable(status)
    if why is not None:
        raise CancelRefused(f"order {order_id} cannot be cancelled: {why}", orderId=order_id, status=status.value)
    if status == S.CANCELLING:
        return None
    return make_event("OrderCancelled", correlation_id=order.get("correlationId") or correlation, orderId=order_id,
                      reason=CANCELLED_BY_CUSTOMER)


# Event fields an order record keeps, by their names in events and in the record's JSON (the envelope and
# `type` are bookkeeping, not order data).
ORDER_FIELDS = {"orderId": "order_id", "customerId": "customer_id", "item": "item", "qty": "qty", "price": "price",
                "paymentId": "payment_id", "bakeryId": "bakery_id", "correlationId": "correlation_id"}
MAX_SEEN_EVENTS = 32
# The payment action an order shows, in pay's own words.
ACTION_OF = {"PayApproved": "apply", "PayCanceled": "cancel", "PayRejected": "decline", "PayVoided": "void"}


@dataclass(frozen=True)
class Step:
    """One step of an order's story: the event, when it happened, and why and by whom where it says."""
    event: str
    at: str
    reason: str | None = None
    by: str | None = None

    def to_json(self) -> dict[str, Any]:
        step = {"event": self.event, "at": self.at}
        if self.reason is not None:
            step["reason"] = self.reason
        if self.by is not None:
            step["by"] = self.by
        return step

    @classmethod
    def from_json(cls, step: Mapping[str, Any]) -> Step:
        return cls(step["event"], step["at"], step.get("reason"), step.get("by"))


@dataclass(frozen=True)
class OrderRecord:
    """The order context's record of one order: what its events said of it, how it stands, its story and its
    deadline. Its JSON (`to_json`) is the order table's row, which Mypage follows; rows written before a field
    existed still read (`from_json`)."""
    order_id: int | None = None
    customer_id: str | None = None
    item: str | None = None
    qty: int | None = None
    price: int | None = None
    payment_id: int | None = None
    bakery_id: str | None = None
    correlation_id: str | None = None
    status: str | None = None    # an OrderStatus, once an event said one
    reason: str | None = None    # why it left the happy path
    action: str | None = None    # the last payment action, in pay's words
    placed_at: str | None = None
    updated_at: str | None = None
    ended_at: str | None = None
    facts: tuple[str, ...] = ()  # the event types seen that tell its status
    event_ids: tuple[str, ...] = ()  # the latest events applied, to know a redelivery
    history: tuple[Step, ...] = ()
    deadline: Deadline | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {name: getattr(self, attribute) for name, attribute in (*ORDER_FIELDS.items(),
                               *SCALARS.items()) if getattr(self, attribute) is not None}
        row.update(facts=list(self.facts), eventIds=list(self.event_ids),
                   history=[step.to_json() for step in self.history])
        if self.deadline is not None:
            row["deadline"] = self.deadline.to_json()
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> OrderRecord:
        due = row.get("deadline")
        return cls(**{attribute: row.get(name) for name, attribute in (*ORDER_FIELDS.items(), *SCALARS.items())},
                   facts=tuple(row.get("facts", ())), event_ids=tuple(row.get("eventIds", ())),
                   history=tuple(Step.from_json(step) for step in row.get("history", ())),
                   deadline=Deadline.from_json(due) if due is not None else None)


SCALARS = {"status": "status", "reason": "reason", "action": "action", "placedAt": "placed_at",
           "updatedAt": "updated_at", "endedAt": "ended_at"}


@dataclass(frozen=True)
class Deadline:
    """When an open order's saga is due to have moved on, and what the order worker does then (the rules are
    agents/order/deadline.py's)."""
    at: float     # epoch seconds
    then: str     # CANCEL or REPAIR
    attempt: int  # repairs asked so far

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "then": self.then, "attempt": self.attempt}

    @classmethod
    def from_json(cls, due: Mapping[str, Any]) -> Deadline:
        return cls(due["at"], due["then"], due["attempt"])


def record_of(row: Mapping[str, Any] | None) -> OrderRecord | None:
    """The record an order table row holds, if any."""
    return None if row is None else OrderRecord.from_json(row)


def apply_event(order: OrderRecord | None, event: Mapping[str, Any]) -> OrderRecord | None:
    """Fold one event into an order record, its story included; None when the event was already applied (a
    redelivery)."""
    order = order or OrderRecord()
    if event["eventId"] in order.event_ids:
        return None
    current = OrderStatus(order.status) if order.status else None
    facts = tuple(sorted({*order.facts, event["type"]} & set(STATUS_AFTER)))
    status = status_of(facts) or current
    changes: dict[str, Any] = {attribute: event[name] for name, attribute in ORDER_FIELDS.items() if name in event}
    if status is not None:
        changes["status"] = status.value
    # Why an order left the happy path is what the first event announcing that said, in whatever order the
    # events arrive (a refund may overtake the rejection that caused it) — unless a person asked for a refund
    # and said why: that reason is the order's, whatever came before or after.
    if event["type"] == "PayCanceled" and "reason" in event:
        changes["reason"] = event["reason"]
    elif "reason" in event and STATUS_AFTER.get(event["type"]) in OFF_PATH and order.reason is None:
        changes["reason"] = event["reason"]
    changes["updated_at"] = event["occurredAt"]
    if event["type"] == "OrderPlaced":
        changes["placed_at"] = event["occurredAt"]
    if status is not None and is_terminal(status) and (current is None or not is_terminal(current)):
        changes["ended_at"] = event["occurredAt"]
    if event["type"] in ACTION_OF:
        changes["action"] = ACTION_OF[event["type"]]
    return replace(order, facts=facts, event_ids=(*order.event_ids, event["eventId"])[-MAX_SEEN_EVENTS:],
                   history=with_step(order.history, event), **changes)


def with_step(history: tuple[Step, ...], event: Mapping[str, Any]) -> tuple[Step, ...]:
    """The order's story with one more event. Events arrive in topic order, not in the order they happened: the
    story is told by their own times."""
    step = Step(event["type"], event["occurredAt"], event.get("reason"), event.get("refundedBy"))
    return tuple(sorted([*history, step], key=lambda s: s.at))


def saga_seconds(before: OrderRecord | None, after: OrderRecord) -> float | None:
    """How long the saga took, at the moment it becomes known (the order ended, and its start was seen —
    in whichever order those events arrived); None before and after that moment."""
    if before is not None and before.placed_at is not None and before.ended_at is not None:
        return None
    if after.placed_at is None or after.ended_at is None:
        return None
    ended, placed = datetime.fromisoformat(after.ended_at), datetime.fromisoformat(after.placed_at)
    return max(0.0, (ended - placed).total_seconds())


def public_view(order: OrderRecord) -> dict[str, Any]:
    """The order as the API shows it (without bookkeeping)."""
    return {
        "id": order.order_id,
        "item": order.item,
        "qty": order.qty,
        "price": order.price,
        "status": order.status,
        **({"reason": order.reason} if order.reason else {}),
        **({"customerId": order.customer_id} if order.customer_id else {}),
        "correlationId": order.correlation_id,
    }
