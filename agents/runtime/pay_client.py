"""The order context's HTTP client of pay: a charge with a timeout, behind the circuit breaker and, in front of
both, the bulkhead (agents/bulkhead.py), with the fallback PAY_FALLBACK chose — used by the order edge and by
the order worker for orders requested over Kafka."""
from __future__ import annotations

import asyncio

import aiohttp
import orjson

from agents.breaker import BreakerSettings, CircuitBreaker, CircuitOpen
from agents.bulkhead import AdaptiveLimit, Bulkhead, BulkheadFull, LimitSettings
from agents.correlation import HTTP_HEADER
from agents.order.intake import Fallback, PaymentDeclined, PaymentUnavailable
from agents.order.menu import OrderRequest
from agents.runtime import tracing
from agents.runtime.stalls import Stalls
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


def bulkhead(settings: Settings, stalls: Stalls) -> Bulkhead:
    limit = AdaptiveLimit(LimitSettings(initial=settings.pay_bulkhead_initial, minimum=settings.pay_bulkhead_min,
                                        maximum=settings.pay_bulkhead_max))
    return Bulkhead("pay", limit, settings.pay_bulkhead_queue, stalls.clock, stalls.worst_since)


# A timeout while this process was late by this share of the timeout (or this long) is this process's own stall.
STALL_SHARE, STALL_AT_LEAST_S = 0.1, 0.02


def pays_failure(exc: BaseException) -> bool:
    """pay could not be called, or failed: what opens the breaker."""
    return isinstance(exc, PaymentUnavailable) and not exc.ours


def our_stall(exc: BaseException) -> bool:
    return isinstance(exc, PaymentUnavailable) and exc.ours


class PayClient:
    """The synchronous way to pay: one pooled HTTP client, the breaker in front of it, the bulkhead in front of
    that, and the fallback."""

    def __init__(self, http: aiohttp.ClientSession, url: str, timeout_s: float, breaker: CircuitBreaker,
                 fallback: Fallback, calls: Bulkhead, wait_s: float, stalls: Stalls) -> None:
        self.http, self.url, self.timeout_s, self.breaker, self.fallback = http, url, timeout_s, breaker, fallback
        self.calls, self.wait_s, self.stalls = calls, wait_s, stalls

    @classmethod
    def from_settings(cls, http: aiohttp.ClientSession, settings: Settings, stalls: Stalls) -> PayClient:
        return cls(http, settings.service_url("pay"), settings.pay_timeout_s,
                   CircuitBreaker("pay", breaker_settings(settings)), Fallback(settings.pay_fallback),
                   bulkhead(settings, stalls), settings.pay_bulkhead_wait_s, stalls)

    async def charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict:
        """Charge the order once it is this caller's turn (within PAY_BULKHEAD_WAIT_S), through the breaker.
        An open breaker refuses before any wait. A refusal pay answers (402) is pay working; only an
        unreachable, failing or timed-out pay opens the breaker — not a turn that did not come in time, nor a
        timeout while this process itself stalled. The bulkhead's limit follows how long the calls take."""
        self.breaker.refuse_if_open()
        try:
            with tracing.span("charge at pay", "client", **{"order.id": order_id}):
                return await self.calls.call(
                    lambda: self.breaker.call(lambda: self._charge(order_id, order, correlation),
                                              is_failure=pays_failure, says_nothing=our_stall),
                    wait_s=self.wait_s, made=lambda exc: not isinstance(exc, CircuitOpen))
        except BulkheadFull as exc:
            raise PaymentUnavailable(f"pay is busy: {exc}", retry_after=exc.retry_after) from None

    async def _charge(self, order_id: int, order: OrderRequest, correlation: str) -> dict:
        started = self.stalls.clock()
        try:
            async with self.http.post(
                f"{self.url}/payments",
                data=orjson.dumps({"orderId": order_id, "price": order.price, "action": "apply"}),
                headers={HTTP_HEADER: correlation, "Content-Type": "application/json", **tracing.http_headers()},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                if response.status == 402:
                    raise PaymentDeclined((await response.json()).get("error", "payment declined"))
                if response.status >= 300:
                    raise PaymentUnavailable(f"pay answered {response.status}: {(await response.text())[:200]}")
                return await response.json()
        except asyncio.TimeoutError:
            late = max(self.stalls.clock() - started - self.timeout_s, self.stalls.worst_since(started))
            ours = late >= max(STALL_AT_LEAST_S, STALL_SHARE * self.timeout_s)
            raise PaymentUnavailable(f"pay did not answer within {self.timeout_s}s"
                                     + (f" (this process stalled {late:.2f}s meanwhile)" if ours else ""),
                                     ours=ours) from None
        except aiohttp.ClientError as exc:
            raise PaymentUnavailable(f"pay is unreachable: {exc}") from None
