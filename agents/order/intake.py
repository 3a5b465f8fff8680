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

from agents.breaker import BreakerSettings, CircuitBreaker, CircuitOpen
from agents.correlation import HTTP_HEADER
from agents.events import Event, make_event
from agents.order.lifecycle import OrderStatus
from agents.order.menu import OrderRequest
from agents.settings import Settings

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


def breaker_settings(settings: Settings) -> BreakerSettings:
    return BreakerSettings(
        # A window larger than the edge's usual concurrency: a wave of simultaneous calls ends with its
        # slowest ones (the timeouts) together, and a short window would see only those.
        window=settings.pay_breaker_window,
        minimum_calls=settings.pay_breaker_min_calls,
        failure_rate=settings.pay_breaker_failure_rate,
        slow_call_seconds=settings.pay_breaker_slow_call_s,
        slow_call_rate=settings.pay_breaker_slow_call_rate,
        open_seconds=settings.pay_breaker_open_s,
        half_open_calls=settings.pay_breaker_half_open_calls,
    )


class Pay:
    """The synchronous way to pay: one pooled HTTP client, the breaker in front of it, and the fallback."""

    def __init__(self, http: aiohttp.ClientSession, url: str, timeout_s: float, breaker: CircuitBreaker,
                 fallback: Fallback) -> None:
        self.http, self.url, self.timeout_s, self.breaker, self.fallback = http, url, timeout_s, breaker, fallback

    @classmethod
    def from_settings(cls, http: aiohttp.ClientSession, settings: Settings) -> Pay:
        return cls(http, settings.service_url("pay"), settings.pay_timeout_s,
                   CircuitBreaker("pay", breaker_settings(settings)), Fallback(settings.pay_fallback))

    async def charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict:
        # A refusal pay answers (402) is pay working; only an unreachable, slow or failing pay opens the breaker.
        return await self.breaker.call(lambda: self._charge(order_id, order, correlation),
                                       is_failure=lambda exc: isinstance(exc, PaymentUnavailable))

    async def _charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict:
        try:
            async with self.http.post(
                f"{self.url}/payments",
                json={"orderId": order_id, "price": order.price, "action": "apply"},
                headers={HTTP_HEADER: correlation},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                if response.status == 402:
                    raise PaymentDeclined((await response.json()).get("error", "payment declined"))
                if response.status >= 300:
                    raise PaymentUnavailable(f"pay answered {response.status}: {(await response.text())[:200]}")
                return await response.json()
        except asyncio.TimeoutError:
            raise PaymentUnavailable(f"pay did not answer within {self.timeout_s}s") from None
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
