"""Order intake, shared by the REST edge and the Kafka command consumer: reserve an order number, announce
the order, charge it through pay synchronously (with a timeout), and announce a failure to charge.

What each outcome means is decided here once; how it is told to the customer (an HTTP status, a dead
letter, a log line) is the caller's business.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

import aiohttp

from agents import config
from agents.correlation import HTTP_HEADER
from agents.events import Event, make_event
from agents.order.lifecycle import OrderStatus
from agents.order.menu import OrderRequest

Emit = Callable[[Event], Awaitable[int]]  # sends an event (acks=all) and returns its offset


class PaymentUnavailable(Exception):
    """pay could not be reached, did not answer in time, or failed."""


class PaymentDeclined(Exception):
    """pay answered, and refused the charge; pay itself announces it (PayRejected)."""


@dataclass(frozen=True)
class Placement:
    order_id: int
    status: OrderStatus
    reason: str | None = None


def pay_timeout() -> float:
    return config.env_float("PAY_TIMEOUT_S", 1.5)


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


async def place(emit: Emit, http: aiohttp.ClientSession, order: OrderRequest, correlation: str,
                reserved_by: str) -> Placement:
    # The order number is the offset of a reservation on the one-partition sequence topic, plus one.
    order_id = 1 + await emit(make_event("OrderNumberReserved", correlation_id=correlation, reservedBy=reserved_by))
    await emit(make_event("OrderPlaced", correlation_id=correlation,
                          orderId=order_id, item=order.item, qty=order.qty, price=order.price))
    try:
        await charge(http, order_id, order, correlation)
    except PaymentUnavailable as exc:
        reason = f"payment unavailable: {exc}"
        await emit(make_event("OrderRejected", correlation_id=correlation, orderId=order_id, reason=reason))
        return Placement(order_id, OrderStatus.REJECTED, reason)
    except PaymentDeclined as exc:
        return Placement(order_id, OrderStatus.PAYMENT_FAILED, f"payment declined: {exc}")
    return Placement(order_id, OrderStatus.PAID)
