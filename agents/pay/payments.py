"""What a payment request means and what a refund is worth. Pure functions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from agents.events import MAX_ORDER_ID, is_order_id
from agents.idempotency import parse_key
from agents.principals import ADMIN, Principal
from agents.refusal import Refusal

APPLY, CANCEL, DECLINE = "apply", "cancel", "decline"
# What each kind of ledger row announces.
EVENT_OF_ACTION = {APPLY: "PayApproved", CANCEL: "PayCanceled", DECLINE: "PayRejected"}
REQUESTED_ACTIONS = (APPLY, CANCEL)
MAX_PRICE = 10**12  # beyond any order, well within SQLite's 64-bit integers
MAX_REASON = 500


class PaymentRefused(Refusal):
    """A payment request pay will not carry out: not one it takes at all (the message says what is wrong)."""


class NotAsThePaymentsStand(PaymentRefused):
    """A request pay takes, but not for this order as its payments stand: rejected already, nothing to refund,
    a refund of a baked order without its reason."""


class RefundNotYours(PaymentRefused):
    """A refund only an admin may ask for (the bakery confirmed the order: the bread is made)."""


@dataclass(frozen=True)
class PaymentRequest:
    order_id: int
    price: int | None
    action: str
    idempotency_key: str | None = None
    reason: str | None = None              # why a refund is asked for
    requested_by: Principal | None = None  # None: from inside, or with authentication off

    def charged(self) -> int:
        """The price a charge asks for (parse_payment refuses a charge without one)."""
        if self.price is None:
            raise PaymentRefused("a charge needs a 'price'")
        return self.price


def _price(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PRICE


def parse_payment(body: Any, idempotency_key: str | None = None,
                  requested_by: Principal | None = None) -> PaymentRequest:
    if not isinstance(body, Mapping):
        raise PaymentRefused('the body must be a JSON object like {"orderId": 1, "price": 25000, "action": "apply"}')
    order_id, price, action = body.get("orderId"), body.get("price"), body.get("action", APPLY)
    if not is_order_id(order_id):
        raise PaymentRefused(f"'orderId' must be a whole number from 1 to {MAX_ORDER_ID}")
    if action not in REQUESTED_ACTIONS:
        raise PaymentRefused(f"'action' must be one of {', '.join(REQUESTED_ACTIONS)}")
    if action == APPLY and not _price(price):
        raise PaymentRefused(f"'price' must be a whole number from 1 to {MAX_PRICE}")
    if action == CANCEL and price is not None and not _price(price):
        raise PaymentRefused(f"'price', when given with cancel, must be a whole number from 1 to {MAX_PRICE}")
    reason = body.get("reason")
    if "reason" in body and (action != CANCEL or not isinstance(reason, str) or not 1 <= len(reason) <= MAX_REASON):
        raise PaymentRefused(f"'reason', when given with cancel, must be text of 1 to {MAX_REASON} characters")
    return PaymentRequest(order_id=order_id, price=price, action=action, idempotency_key=parse_key(idempotency_key),
                          reason=reason,
                          requested_by=requested_by)


def check_chargeable(order_id: int, voided_reason: str | None) -> None:
    """An order rejected before its charge arrived (pay was slow or down) must not be charged any more."""
    if voided_reason is not None:
        raise NotAsThePaymentsStand(f"order {order_id} was rejected ({voided_reason}); it is not charged")


def check_refundable(request: PaymentRequest, bakery_confirmed: bool) -> None:
    """Money goes back through the saga (a cancel before the bakery decided) — or, once the bakery confirmed
    the order and the bread is made, only when an admin asks and says why (with authentication off: whoever
    asks, with a reason). The order then ends Refunded, with that reason on Mypage."""
    if not bakery_confirmed:
        return
    who = request.requested_by
    if who is not None and who.role != ADMIN:
        raise RefundNotYours(f"order {request.order_id} was confirmed by the bakery: only an admin may refund it")
    if not request.reason:
        raise NotAsThePaymentsStand(f"order {request.order_id} was confirmed by the bakery: a refund of it needs a "
                                    f"'reason', recorded in the ledger and shown on Mypage")


def decline_reason(price: int, limit: int) -> str | None:
    """Why pay declines a charge, or None when it takes it."""
    if price > limit:
        return f"the price {price} is over the payment limit of {limit}"
    return None


def refund_for(charged: int | None, order_id: int) -> int:
    """A refund gives back exactly what was charged; with no charge there is nothing to refund."""
    if charged is None:
        raise NotAsThePaymentsStand(f"order {order_id} has no payment to refund")
    return charged


def answered_by(action: str) -> tuple[str, ...]:
    """The ledger rows that answer a request for `action` made before: a charge's repeat gets the charge or the
    decline the first one got."""
    return (action, DECLINE) if action == APPLY else (action,)


@dataclass(frozen=True)
class OrderBooks:
    """What the ledger holds of one order when a new payment request for it comes."""
    charged: int | None        # the amount charged, if it was
    confirmed: bool            # the bakery confirmed the order
    voided_reason: str | None  # why the order was voided before its charge came, if it was


@dataclass(frozen=True)
class Entry:
    """A ledger row a payment request writes."""
    action: str
    amount: int
    reason: str | None = None


def entry_for(request: PaymentRequest, books: OrderBooks, limit: int) -> Entry:
    """What a new payment request writes — the refund of what was charged, or the charge, or its decline over
    the limit — or the refusal, in that order: a refund needs a charge and must be allowed; a voided order is
    charged no more."""
    if request.action == CANCEL:
        amount = refund_for(books.charged, request.order_id)
        check_refundable(request, books.confirmed)
        return Entry(CANCEL, amount, request.reason)
    check_chargeable(request.order_id, books.voided_reason)
    price = request.charged()
    reason = decline_reason(price, limit)
    return Entry(DECLINE, price, reason) if reason else Entry(APPLY, price)
