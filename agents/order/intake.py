"""Order intake, shared by the REST edge and the Kafka command consumer: reserve an order number, announce
the order, charge it through pay synchronously (with a timeout, behind a circuit breaker), and when pay
cannot be called, fall back as PAY_FALLBACK says: reject the order, or defer its payment to Kafka.

What each outcome means is decided here once; how it is told to the customer (an HTTP status, a dead
letter, a log line) is the caller's business.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable

import aiohttp

from agents import config
from agents.breaker import BreakerSettings, CircuitBreaker, CircuitOpen
from agents.correlation import HTTP_HEADER
from agents.events import Event, make_event
from agents.order.lifecycle import OrderStatus
from agents.order.menu import OrderRequest

Emit = Callable[[Event], Awaitable[int]]  # sends an event (acks=all) and returns its offset


class PaymentUnavailable(Exception):
    """pay could not be reached, did not answer in time, or failed."""


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


def pay_timeout() -> float:
    return config.env_float("PAY_TIMEOUT_S", 1.5)


def pay_fallback() -> Fallback:
    raw = config.env("PAY_FALLBACK", Fallback.REJECT.value)
    try:
        return Fallback(raw)
    except ValueError:
        raise SystemExit(f"PAY_FALLBACK must be one of {', '.join(f.value for f in Fallback)}, got {raw!r}") from None


def breaker_settings() -> BreakerSettings:
    try:
        return BreakerSettings(
            # A window larger than the edge's usual concurrency: a wave of simultaneous calls ends with its
            # slowest ones (the timeouts) together, and a short window would see only those.
            window=config.env_int("PAY_BREAKER_WINDOW", 100),
            minimum_calls=config.env_int("PAY_BREAKER_MIN_CALLS", 50),
            failure_rate=config.env_float("PAY_BREAKER_FAILURE_RATE", 0.5),
            slow_call_seconds=config.env_float("PAY_BREAKER_SLOW_CALL_S", 1.0),
            slow_call_rate=config.env_float("PAY_BREAKER_SLOW_CALL_RATE", 1.0),
            open_seconds=config.env_float("PAY_BREAKER_OPEN_S", 5.0),
            half_open_calls=config.env_int("PAY_BREAKER_HALF_OPEN_CALLS", 5),
        )
    except ValueError as exc:
        raise SystemExit(f"PAY_BREAKER_* settings: {exc}") from None


class Pay:
    """The synchronous way to pay: one pooled HTTP client, the breaker in front of it, and the fallback."""

    def __init__(self, http: aiohttp.ClientSession, breaker: CircuitBreaker | None = None,
                 fallback: Fallback | None = None) -> None:
        self.http = http
        self.breaker = breaker or CircuitBreaker("pay", breaker_settings())
        self.fallback = fallback or pay_fallback()

    async def charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict:
        # A refusal pay answers (402) is pay working; only an unreachable, slow or failing pay opens the breaker.
        return await self.breaker.call(lambda: charge(self.http, order_id, order, correlation),
                                       is_failure=lambda exc: isinstance(exc, PaymentUnavailable))


async def charge(http: aiohttp.ClientSession, order_id: int, order: OrderRequest, correlation: str) -> dict:
    try:
        async with http.post(
            f"{config.service_url('pay')}/payments",
            json={"orderId": order_id, "price": order.price, "action": "apply"},
            headers={HTTP_HEADER: correlation},
            timeout=aiohttp.ClientTimeout(total=pay_timeout()),
        ) as response:
            if response.status == 402:
                raise PaymentDeclined((await response.json()).get("error", "payment declined"))
            if response.status >= 300:
                raise PaymentUnavailable(f"pay answered {response.status}: {(await response.text())[:200]}")
            return await response.json()
    except asyncio.TimeoutError:
        raise PaymentUnavailable(f"pay did not answer within {pay_timeout()}s") from None
    except aiohttp.ClientError as exc:
        raise PaymentUnavailable(f"pay is unreachable: {exc}") from None


async def reserve(emit: Emit, correlation: str, reserved_by: str) -> int:
    """A new order number: the offset of a reservation on the one-partition sequence topic, plus one."""
    return 1 + await emit(make_event("OrderNumberReserved", correlation_id=correlation, reservedBy=reserved_by))


async def place(emit: Emit, pay: Pay, order: OrderRequest, correlation: str, reserved_by: str,
                customer: str | None = None) -> Placement:
    return await place_reserved(emit, pay, order, await reserve(emit, correlation, reserved_by), correlation,
                                customer)


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
            retry_after = exc.retry_after if isinstance(exc, CircuitOpen) else pay.breaker.settings.open_seconds
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


def outcome_event(placement: Placement, order: OrderRequest, correlation: str, cause: str | None = None) -> Event | None:
    """What intake announces about the charge: pay announces a charge or a decline itself; intake announces
    a payment it deferred (PAY_FALLBACK=defer) or an order it rejected because pay could not be called."""
    if placement.status == OrderStatus.PAYMENT_PENDING:
        return make_event("PaymentRequested", correlation_id=correlation, cause=cause, orderId=placement.order_id,
                          price=order.price, reason=placement.reason)
    if placement.status == OrderStatus.REJECTED:
        return make_event("OrderRejected", correlation_id=correlation, cause=cause, orderId=placement.order_id,
                          reason=placement.reason)
    return None
