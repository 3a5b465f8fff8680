"""A bulkhead with an adaptive limit, in front of a dependency: at most `limit` calls in flight; further callers
wait their turn, first come first served, in a bounded queue and for no longer than their own deadline.

Why: a caller that answers fast can drive its dependency (and the machine they share) far past what it
sustains; the calls then stretch past their timeout together, and the waves of timeouts open the breaker —
the caller's own doing, not the dependency's. Hystrix's thread pool bounded that for the seed; here the bound
follows what the dependency sustains, as Netflix's concurrency-limits does (its AIMD limit): one more call in
flight after each call answered in time while the limit was in use, `backoff` times as many after each call
that timed out or failed. (Backing off only once drops were common — the seed's pay times out on ~8 % of calls
by itself, 400–620 ms against 610 ms — was tried: it let the limit grow until the machine saturated and the
breaker opened, bench/breaker.py --concurrency 300 fell from 71 % to 8–9 % availability, and it did not
shorten the wait at 100 clients.) Waiting in the queue is not the dependency's fault: the breaker sees only the calls
made, and a caller whose deadline passes in the queue is refused (BulkheadFull) without any call.
"""
from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from prometheus_client import Counter, Gauge, Histogram

T = TypeVar("T")

BULKHEAD_LIMIT = Gauge("bread_bulkhead_limit", "How many calls a bulkhead lets be in flight at once now",
                       ["bulkhead"])
BULKHEAD_IN_FLIGHT = Gauge("bread_bulkhead_in_flight", "Calls in flight through a bulkhead", ["bulkhead"])
BULKHEAD_WAITING = Gauge("bread_bulkhead_waiting", "Callers waiting their turn at a bulkhead", ["bulkhead"])
BULKHEAD_REFUSED = Counter("bread_bulkhead_refused_total", "Callers a bulkhead refused without a call: its queue "
                           "was full, or their deadline passed while they waited", ["bulkhead", "reason"])
BULKHEAD_WAIT = Histogram("bread_bulkhead_wait_seconds", "How long callers waited for their turn at a bulkhead",
                          ["bulkhead"], buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))


@dataclass(frozen=True)
class LimitSettings:
    initial: int = 20     # calls in flight at first
    minimum: int = 2      # never fewer, so the dependency's recovery is seen
    maximum: int = 200    # never more
    backoff: float = 0.9  # after a call that timed out or failed, this share of the limit

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.initial <= self.maximum:
            raise ValueError("the limits must satisfy 1 <= minimum <= initial <= maximum")
        if not 0 < self.backoff < 1:
            raise ValueError("backoff is a share in (0, 1)")


class AdaptiveLimit:
    """Additive increase, multiplicative decrease of how many calls may be in flight. Pure: it learns only
    from what it is told."""

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        self._limit = float(settings.initial)

    @property
    def value(self) -> int:
        return int(self._limit)

    def answered(self, in_flight: int) -> None:
        """A call answered in time, with `in_flight` calls out as it started. Only a limit in use grows: one
        never reached says nothing of what more would do."""
        if 2 * in_flight >= self._limit:
            self._limit = min(self.settings.maximum, self._limit + 1)

    def dropped(self) -> None:
        """A call timed out or failed: the dependency is past what it sustains."""
        self._limit = max(self.settings.minimum, self._limit * self.settings.backoff)


class BulkheadFull(Exception):
    """A caller refused without a call: the queue was full, or its deadline passed while it waited."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Bulkhead:
    def __init__(self, name: str, limit: AdaptiveLimit, max_waiting: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.limit, self.max_waiting = name, limit, max_waiting
        self._clock = clock
        self.in_flight = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()
        BULKHEAD_LIMIT.labels(name).set_function(lambda: self.limit.value)
        BULKHEAD_IN_FLIGHT.labels(name).set_function(lambda: self.in_flight)
        BULKHEAD_WAITING.labels(name).set_function(lambda: len(self._waiting))

    async def call(self, make_call: Callable[[], Awaitable[T]], wait_s: float,
                   is_drop: Callable[[BaseException], bool]) -> T:
        """Run `make_call()` once it is this caller's turn, or raise BulkheadFull when the queue is full or
        the turn does not come within `wait_s`. `is_drop` tells which exceptions say the dependency is past
        what it sustains (a refusal it answered properly is not)."""
        await self._turn(wait_s)
        in_flight = self.in_flight
        try:
            result = await make_call()
        except Exception as exc:
            if is_drop(exc):
                self.limit.dropped()
            else:
                self.limit.answered(in_flight)
            raise
        else:
            self.limit.answered(in_flight)
            return result
        finally:
            self.in_flight -= 1
            self._let_in()  # this turn, and any a grown limit adds, to those waiting

    async def _turn(self, wait_s: float) -> None:
        if not self._waiting and self.in_flight < self.limit.value:
            self.in_flight += 1
            BULKHEAD_WAIT.labels(self.name).observe(0)
            return
        if len(self._waiting) >= self.max_waiting:
            BULKHEAD_REFUSED.labels(self.name, "queue_full").inc()
            raise BulkheadFull(f"{self.name} has {self.in_flight} calls in flight and {len(self._waiting)} "
                               "waiting: no room to wait", retry_after=1.0)
        started = self._clock()
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), wait_s)
        except asyncio.TimeoutError:
            if turn.done() and not turn.cancelled():  # let in just as the time was up: take the turn
                return
            turn.cancel()
            BULKHEAD_REFUSED.labels(self.name, "deadline").inc()
            raise BulkheadFull(f"{self.name}: no turn within {wait_s:.2f}s ({self.in_flight} calls "
                               f"in flight, limit {self.limit.value})", retry_after=1.0) from None
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.in_flight -= 1  # the caller left with the turn it was given: pass it on
                self._let_in()
            turn.cancel()
            raise
        finally:
            if turn in self._waiting:
                self._waiting.remove(turn)
            BULKHEAD_WAIT.labels(self.name).observe(self._clock() - started)

    def _let_in(self) -> None:
        while self._waiting and self.in_flight < self.limit.value:
            turn = self._waiting.popleft()
            if not turn.done():
                self.in_flight += 1
                turn.set_result(None)
