"""Order intake, shared by the REST edge and the Kafka command consumer: take an order number, announce
the order, charge it through pay synchronously (with a timeout, behind a circuit breaker), and when pay
cannot be called, fall back as PAY_FALLBACK says: reject the order, or defer its payment to Kafka.

What each outcome means is decided here once; how it is told to the customer (an HTTP status, a dead
letter, a log line) is the caller's business.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Any, Awaitable, Callable, Mapping, Protocol

from agents.breaker import CircuitBreaker, CircuitOpen
from agents.events import Event, make_event
from agents.idempotency import HEADER as IDEMPOTENCY_HEADER
from agents.idempotency import KeyUsedBefore
from agents.order.lifecycle import OrderStatus
from agents.order.menu import OrderRequest

Emit = Callable[[Event], Awaitable[int]]  # sends an event (acks=all) and returns its offset


class PaymentUnavailable(Exception):
    """pay could not be reached, did not answer in time, or failed; or its turn did not come in time
    (`retry_after`: when it may be worth trying again, when known). `ours`: the time ran out while this process
    itself stalled, which says nothing of pay."""

    def __init__(self, message: str, retry_after: float | None = None, ours: bool = False) -> None:
        super().__init__(message)
        self.retry_after, self.ours = retry_after, ours


class PaymentDeclined(Exception):
    """pay answered, and refused the charge; pay itself announces it (PayRejected)."""


class Fallback(str, Enum):
    """What intake does with an order when pay cannot be called (breaker open, timeout, pay down)."""
    REJECT = "reject"  # the order ends Rejected; the caller is told to retry later
    DEFER = "defer"    # the order is taken; pay charges it from the payment-requests topic when it is back


@dataclass(frozen=True)
class Placement:
    order_id: int
    status: OrderStatus
    reason: str | None = None
    retry_after: float | None = None  # for a rejection: when pay may be worth trying again


class Pay(Protocol):
    """The synchronous way to pay (agents/runtime/pay_client.py): a charge behind a breaker, and the fallback
    for when pay cannot be called."""
    breaker: CircuitBreaker
    fallback: Fallback

    async def charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict: ...


def check_pay_callable(pay: Pay) -> None:
    """Raise CircuitOpen when a new order could only be rejected: PAY_FALLBACK=reject and the breaker open. The
    order is refused before it is numbered or announced — it leaves nothing behind, and while pay is down the
    refusals cost no events (each would be three) that the contexts must then catch up on."""
    if pay.fallback == Fallback.REJECT:
        pay.breaker.refuse_if_open()


def is_placed(placed: Mapping[str, Any] | None) -> bool:
    """Whether a request's placement is on record (Ordered: its number is reserved, the charge still under
    way)."""
    return placed is not None and placed["status"] != OrderStatus.ORDERED.value


def check_same_request(placed: Mapping[str, Any], key: str, order: OrderRequest, customer: str | None) -> None:
    """An Idempotency-Key names one order request: sent again with another order, or by another customer, it is
    refused (KeyUsedBefore), and the order the first request placed stands."""
    if (placed["item"], placed["qty"], placed.get("customerId")) != (order.item, order.qty, customer):
        raise KeyUsedBefore(f"the {IDEMPOTENCY_HEADER} {key!r} was used for another order", orderId=placed["orderId"])


def requests_at_once(most: int, pay_calls: int) -> int:
    """How many orders requested over Kafka the order worker places at once: no more than `most`, nor than twice
    the calls its bulkhead in front of pay lets through now — a placement spends about half its time on its
    events, and one more would only wait at the bulkhead, its turn's deadline running, while on the log it waits
    for nothing."""
    return max(1, min(most, 2 * pay_calls))


# The reservation at offset k of the one-partition sequence topic owns the numbers k×100+1 … (k+1)×100. Never
# change it on a running system: two sizes would hand out the same numbers (1 when topics.yaml was written).
NUMBERS_PER_RESERVATION = 100


class OrderNumbers:
    """New order numbers for one reserver (an order edge, the order worker), taken from blocks it reserves on the
    one-partition sequence topic: one acknowledged reservation per NUMBERS_PER_RESERVATION orders, numbers unique
    across any number of reservers, and 1, 2, 3… on a fresh broker with one. A reserver that stops leaves the
    rest of its block unused."""

    def __init__(self, emit: Emit, reserved_by: str) -> None:
        self._emit, self._reserved_by = emit, reserved_by
        self._next = self._end = 0
        self._reserving = asyncio.Lock()

    async def take(self, correlation: str) -> int:
        while self._next >= self._end:
            async with self._reserving:  # one reservation at a time: callers that find the block used up wait for it
                if self._next >= self._end:
                    offset = await self._emit(make_event("OrderNumberReserved", correlation_id=correlation,
                                                         reservedBy=self._reserved_by))
                    self._next, self._end = block_of(offset)
        number, self._next = self._next, self._next + 1
        return number


def block_of(offset: int) -> tuple[int, int]:
    """The numbers the reservation at `offset` owns: from the first, up to but not including the second."""
    return offset * NUMBERS_PER_RESERVATION + 1, (offset + 1) * NUMBERS_PER_RESERVATION + 1


async def place(emit: Emit, numbers: OrderNumbers, pay: Pay, order: OrderRequest, correlation: str,
                customer: str | None = None) -> Placement:
    return await place_reserved(emit, pay, order, await numbers.take(correlation), correlation, customer)


async def place_reserved(emit: Emit, pay: Pay, order: OrderRequest, order_id: int, correlation: str,
                         customer: str | None = None, cause: str | None = None) -> Placement:
    """Announce the order, charge it, and announce what became of the charge. With a `cause` (a request
    placed once) every event's id derives from it, so placing the same request again repeats the same events."""
    await emit(placed_event(order_id, order, correlation, customer, cause))
    try:
        await pay.charge(order_id, order, correlation)
    except (PaymentUnavailable, CircuitOpen) as exc:
        reason = f"payment unavailable: {exc}"
        if pay.fallback == Fallback.DEFER:
            # pay charges it from Kafka once it can (at most once: its ledger takes one charge per order).
            placement = Placement(order_id, OrderStatus.PAYMENT_PENDING, reason)
        else:
            retry_after = exc.retry_after or pay.breaker.settings.open_seconds
            placement = Placement(order_id, OrderStatus.REJECTED, reason, retry_after)
    except PaymentDeclined as exc:
        placement = Placement(order_id, OrderStatus.PAYMENT_FAILED, f"payment declined: {exc}")
    else:
        placement = Placement(order_id, OrderStatus.PAID)
    outcome = outcome_event(placement, order, correlation, cause)
    if outcome is not None:
        await emit(outcome)
    return placement


def placed_event(order_id: int, order: OrderRequest, correlation: str, customer: str | None,
                 cause: str | None = None) -> Event:
    return make_event("OrderPlaced", correlation_id=correlation, cause=cause, orderId=order_id, item=order.item,
                      qty=order.qty, price=order.price, **({"customerId": customer} if customer else {}))


def outcome_event(placement: Placement, order: OrderRequest, correlation: str,
                  cause: str | None = None) -> Event | None:
    """What intake announces about the charge: pay announces a charge or a decline itself; intake announces
    a payment it deferred (PAY_FALLBACK=defer) or an order it rejected because pay could not be called."""
    if placement.status == OrderStatus.PAYMENT_PENDING:
        return make_event("PaymentRequested", correlation_id=correlation, cause=cause, orderId=placement.order_id,
                          price=order.price, reason=placement.reason)
    if placement.status == OrderStatus.REJECTED:
        return make_event("OrderRejected", correlation_id=correlation, cause=cause, orderId=placement.order_id,
                          reason=placement.reason)
    return None
