"""The order context's HTTP client of pay: a charge with a timeout, behind the circuit breaker and, in front of
both, the bulkhead (agents/bulkhead.py), with the fallback PAY_FALLBACK chose — used by the order edge and by
the order worker for orders requested over Kafka."""
from __future__ import annotations

import asyncio
import time
from typing import Callable

import aiohttp
import orjson

from agents.breaker import BreakerSettings, CircuitBreaker
from agents.bulkhead import AdaptiveLimit, Bulkhead, BulkheadFull, LimitSettings
from agents.correlation import HTTP_HEADER
from agents.order.intake import Fallback, PaymentDeclined, PaymentUnavailable
from agents.order.menu import OrderRequest
from agents.settings import Settings


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


def bulkhead(settings: Settings, clock: Callable[[], float] = time.monotonic) -> Bulkhead:
    limit = AdaptiveLimit(LimitSettings(initial=settings.pay_bulkhead_initial, minimum=settings.pay_bulkhead_min,
                                        maximum=settings.pay_bulkhead_max))
    return Bulkhead("pay", limit, settings.pay_bulkhead_queue, clock)


class PayClient:
    """The synchronous way to pay: one pooled HTTP client, the breaker in front of it, the bulkhead in front of
    that, and the fallback."""

    def __init__(self, http: aiohttp.ClientSession, url: str, timeout_s: float, breaker: CircuitBreaker,
                 fallback: Fallback, calls: Bulkhead, wait_s: float) -> None:
        self.http, self.url, self.timeout_s, self.breaker, self.fallback = http, url, timeout_s, breaker, fallback
        self.calls, self.wait_s = calls, wait_s

    @classmethod
    def from_settings(cls, http: aiohttp.ClientSession, settings: Settings) -> PayClient:
        return cls(http, settings.service_url("pay"), settings.pay_timeout_s,
                   CircuitBreaker("pay", breaker_settings(settings)), Fallback(settings.pay_fallback),
                   bulkhead(settings), settings.pay_bulkhead_wait_s)

    async def charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict:
        """Charge the order once it is this caller's turn (within PAY_BULKHEAD_WAIT_S), through the breaker.
        An open breaker refuses before any wait. A refusal pay answers (402) is pay working; only an
        unreachable, slow or failing pay opens the breaker or lowers the bulkhead's limit — a turn that did
        not come in time does neither."""
        self.breaker.refuse_if_open()
        try:
            return await self.calls.call(
                lambda: self.breaker.call(lambda: self._charge(order_id, order, correlation),
                                          is_failure=lambda exc: isinstance(exc, PaymentUnavailable)),
                wait_s=self.wait_s,
                is_drop=lambda exc: isinstance(exc, PaymentUnavailable))
        except BulkheadFull as exc:
            raise PaymentUnavailable(f"pay is busy: {exc}", retry_after=exc.retry_after) from None

    async def _charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict:
        try:
            async with self.http.post(
                f"{self.url}/payments",
                data=orjson.dumps({"orderId": order_id, "price": order.price, "action": "apply"}),
                headers={HTTP_HEADER: correlation, "Content-Type": "application/json"},
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
