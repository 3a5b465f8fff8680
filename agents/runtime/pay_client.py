"""The order context's HTTP client of pay: a charge with a timeout, behind the circuit breaker, with the
fallback PAY_FALLBACK chose — used by the order edge and by the order worker for orders requested over Kafka."""
from __future__ import annotations

import asyncio

import aiohttp

from agents.breaker import BreakerSettings, CircuitBreaker
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


class PayClient:
    """The synchronous way to pay: one pooled HTTP client, the breaker in front of it, and the fallback."""

    def __init__(self, http: aiohttp.ClientSession, url: str, timeout_s: float, breaker: CircuitBreaker,
                 fallback: Fallback) -> None:
        self.http, self.url, self.timeout_s, self.breaker, self.fallback = http, url, timeout_s, breaker, fallback

    @classmethod
    def from_settings(cls, http: aiohttp.ClientSession, settings: Settings) -> PayClient:
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
