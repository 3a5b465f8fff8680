"""A bulkhead with an adaptive limit, in front of a dependency (pay): at most `limit` calls in flight; further
callers wait their turn, first come first served, in a bounded queue and for no longer than their own deadline.

Why: a caller that answers fast can drive what it calls (and the machine they share) far past what it sustains;
the calls then stretch past their timeouts together. Hystrix's thread pool bounded that for the seed; here the
bound follows what the dependency sustains, from how long its calls take as seen here, as Netflix's
concurrency-limits does: while calls take about the usual time the limit grows by one per call (and only while it
is in use, as its AIMD limit does), and as a window of calls takes longer than usual it shrinks in proportion (as
its gradient limit does; one call alone varies too much). The time seen
here is what counts, not the dependency's own: a machine so busy that this process or the dependency wakes late is
queueing too, and fewer calls in flight is the cure. A call that timed out counts as longer than the time it was
given, so more timeouts than usual shrink the limit too. Waiting in the queue is not the
dependency's fault: a caller whose turn does not come in time is refused (BulkheadFull) without any call.
"""
from __future__ import annotations

import asyncio
import collections
import math
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


# A window of calls during which this process mostly stalled: a fifth fewer would do. Its stalls say the machine is
# saturated, not by how much; halving swung the limit between too few and too many (docs/performance.md).
STALLED_BY = 0.8


@dataclass(frozen=True)
class LimitSettings:
    initial: int = 100         # calls in flight at first
    minimum: int = 2           # never fewer, so the dependency's recovery is seen
    maximum: int = 200         # never more
    tolerance: float = 4.0     # calls this much slower than usual are still no sign of queueing
    smoothing: float = 0.2     # the share of the way to a new estimate the limit goes at once
    window_calls: int = 20     # calls are judged by the average of each window of this many: one alone varies
    usual_windows: int = 50    # "usual" is the average of this many windows
    stalled_share: float = 0.1  # this process's own loop late by this share of a call's time (and by at least
    stalled_s: float = 0.05     # this) while it was out: the machine is past what it sustains

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.initial <= self.maximum:
            raise ValueError("the limits must satisfy 1 <= minimum <= initial <= maximum")
        if self.tolerance < 1 or not 0 < self.smoothing <= 1 or self.window_calls < 1 or self.usual_windows < 1:
            raise ValueError("tolerance is at least 1, smoothing a share in (0, 1], the windows at least 1 long")
        if self.stalled_s <= 0 or not 0 < self.stalled_share <= 1:
            raise ValueError("stalled_s is above 0, stalled_share a share in (0, 1]")


class AdaptiveLimit:
    """How many calls may be in flight, from how long they take (a gradient limit). Pure: it learns only from
    what it is told."""

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        self._limit = float(settings.initial)
        self._usual: float | None = None  # seconds a call takes, as windows of calls averaged
        self._windows = 0
        self._late_before = 0.0           # how late this process was, on average, in the last window judged
        self._took, self._calls, self._stalled, self._busiest, self._late = 0.0, 0, 0, 0, 0.0  # the window filling

    @property
    def value(self) -> int:
        return int(self._limit)

    @property
    def usual_s(self) -> float | None:
        return self._usual

    def took(self, seconds: float, in_flight: int, late_s: float = 0.0) -> None:
        """A call took `seconds` (answered, failed, or timed out), with `in_flight` calls out as it started, and
        this process's loop was at most `late_s` late meanwhile."""
        self._took += seconds
        self._calls += 1
        self._stalled += late_s >= max(self.settings.stalled_s, self.settings.stalled_share * seconds)
        self._late += late_s
        self._busiest = max(self._busiest, in_flight)
        if self._calls >= self.settings.window_calls:
            late = self._late / self._calls
            stalled = 2 * self._stalled >= self._calls
            self._judge(self._took / self._calls, stalled and late >= self._late_before, stalled,
                        2 * self._busiest >= self._limit)
            self._late_before = late
            self._took, self._calls, self._stalled, self._busiest, self._late = 0.0, 0, 0, 0, 0.0

    def _judge(self, recent: float, stalling_more: bool, stalled: bool, in_use: bool) -> None:
        """A window of calls took `recent` each on average; this process was `stalled` in most of them, and
        `stalling_more`: later than in the window before. Fewer calls only while that grows: when the stalls
        stay as they are with fewer calls, the calls are not what stalls it (the queue, the callers are)."""
        gradient = 1.0 if self._usual is None else \
            max(0.5, min(1.0, self.settings.tolerance * self._usual / max(recent, 1e-6)))
        queueing = gradient < 1.0 or stalled
        self._windows += 1
        # A window that queued teaches "usual" little: the usual time is the dependency's, not a busy machine's.
        weight = (0.1 if queueing else 1.0) / min(self._windows, self.settings.usual_windows)
        usual = recent if self._usual is None else self._usual + weight * (recent - self._usual)
        self._usual = usual * 0.9 if usual > 2 * recent else usual  # quick again: forget the slow spell faster
        if not in_use:
            return  # only a limit in use tells anything of more, or of fewer
        if stalling_more:
            self._towards(self._limit * min(gradient, STALLED_BY))
        elif stalled:
            return
        elif queueing:  # as many as would take the usual time, and a queue's worth more (jitter is not queueing)
            self._towards(self._limit * gradient + math.sqrt(self._limit))
        else:
            self._towards(self._limit + math.sqrt(self._limit))

    def _towards(self, estimate: float) -> None:
        self._set(self._limit + self.settings.smoothing * (estimate - self._limit))

    def _set(self, limit: float) -> None:
        self._limit = max(self.settings.minimum, min(self.settings.maximum, limit))


class BulkheadFull(Exception):
    """A caller refused without a call: the queue was full, or its deadline passed while it waited."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Bulkhead:
    def __init__(self, name: str, limit: AdaptiveLimit, max_waiting: int,
                 clock: Callable[[], float] = time.monotonic,
                 late_since: Callable[[float], float] = lambda since: 0.0) -> None:
        self.name, self.limit, self.max_waiting = name, limit, max_waiting
        self._clock, self._late_since = clock, late_since  # how late this process's loop was since a moment
        self.in_flight = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()
        BULKHEAD_LIMIT.labels(name).set_function(lambda: self.limit.value)
        BULKHEAD_IN_FLIGHT.labels(name).set_function(lambda: self.in_flight)
        BULKHEAD_WAITING.labels(name).set_function(lambda: len(self._waiting))

    async def call(self, make_call: Callable[[], Awaitable[T]], wait_s: float,
                   made: Callable[[BaseException], bool] = lambda exc: True) -> T:
        """Run `make_call()` once it is this caller's turn, or raise BulkheadFull when the queue is full or the
        turn does not come within `wait_s`. The limit learns how long the call took, however it
        ended (`made` tells which exceptions mean no call was made at all), and how late this process's own loop
        was meanwhile."""
        await self._turn(wait_s)
        in_flight, started = self.in_flight, self._clock()
        try:
            result = await make_call()
            self.limit.took(self._clock() - started, in_flight, late_s=self._late_since(started))
            return result
        except Exception as exc:
            if made(exc):
                self.limit.took(self._clock() - started, in_flight, late_s=self._late_since(started))
            raise
        finally:  # cancelled or not: the turn passes on, with any a grown limit adds, to those waiting
            self.in_flight -= 1
            self._let_in()

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
