"""An asyncio circuit breaker: closed → open → half-open → closed, over a count-based sliding window.

Why bread keeps its own: the async breakers on PyPI count consecutive failures (aiobreaker, purgatory,
circuitbreaker) or an error ratio over a time span (aiomisc); none has a failure-rate threshold over the
last N calls with a minimum number of calls, a slow-call threshold and a bounded number of half-open trials,
which is the model this edge needs (Resilience4j's, the one the seed's successors use).

- closed: every call goes through; its outcome (success, failure, slow) enters a window of the last
  `window` calls. Once the window holds at least `minimum_calls`, a failure rate or slow-call rate at or
  above its threshold opens the breaker.
- open: calls fail at once with `CircuitOpen` (carrying how long until a trial), for `open_seconds`.
- half-open: up to `half_open_calls` trial calls go through, the rest fail fast; when all trials have
  answered, their rates decide: open again, or closed with an empty window. A trial that is cancelled
  gives its slot back, so the breaker cannot be stuck half-open waiting for an answer that never comes.

The per-call timeout belongs inside the call (the caller's coroutine): a timeout is a failure like any other.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable, Deque, TypeVar

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)
T = TypeVar("T")

BREAKER_STATE = Gauge("bread_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open", ["breaker"])
BREAKER_TRANSITIONS = Counter("bread_breaker_transitions_total", "Circuit breaker state changes",
                              ["breaker", "from_state", "to_state"])
BREAKER_CALLS = Counter("bread_breaker_calls_total",
                        "Calls through a circuit breaker: success, slow (succeeded late), failure, not_permitted",
                        ["breaker", "outcome"])


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


GAUGE_VALUE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}


class CircuitOpen(Exception):
    """The breaker refuses the call without making it."""

    def __init__(self, name: str, retry_after: float):
        super().__init__(f"the circuit breaker for {name} is open; next trial in {retry_after:.1f}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class BreakerSettings:
    window: int = 100                # the last N calls whose outcomes are counted
    minimum_calls: int = 50          # no decision on fewer calls than this
    failure_rate: float = 0.5        # open at or above this share of failed calls
    slow_call_seconds: float = 1.0   # a call that takes at least this long is slow (even if it succeeds)
    slow_call_rate: float = 1.0      # open at or above this share of slow calls
    open_seconds: float = 5.0        # how long to fail fast before trying again
    half_open_calls: int = 5         # trial calls let through when half-open

    def __post_init__(self) -> None:
        if self.window < 1 or self.half_open_calls < 1:
            raise ValueError("window and half_open_calls must be at least 1")
        if not 1 <= self.minimum_calls <= self.window:
            raise ValueError("minimum_calls must be between 1 and window")
        for rate in (self.failure_rate, self.slow_call_rate):
            if not 0 < rate <= 1:
                raise ValueError("rates are shares in (0, 1]")
        if self.slow_call_seconds <= 0 or self.open_seconds <= 0:
            raise ValueError("durations must be positive")


@dataclass(frozen=True)
class Outcome:
    failed: bool
    slow: bool


def should_open(outcomes: Deque[Outcome] | list[Outcome], settings: BreakerSettings, minimum: int) -> bool:
    """Whether these outcomes call for opening: enough of them, and a rate at or above its threshold."""
    if len(outcomes) < minimum:
        return False
    failed = sum(o.failed for o in outcomes) / len(outcomes)
    slow = sum(o.slow for o in outcomes) / len(outcomes)
    return failed >= settings.failure_rate or slow >= settings.slow_call_rate


Listener = Callable[[str, BreakerState, BreakerState], None]


class CircuitBreaker:
    def __init__(self, name: str, settings: BreakerSettings, *, clock: Callable[[], float] = time.monotonic,
                 listeners: tuple[Listener, ...] = ()):
        self.name = name
        self.settings = settings
        self._clock = clock
        self._listeners = listeners
        self._state = BreakerState.CLOSED
        self._window: Deque[Outcome] = deque(maxlen=settings.window)
        self._opened_at = 0.0
        self._trials_started = 0
        self._trials: list[Outcome] = []
        # Read at scrape time, so an open breaker whose wait is over shows half-open without a call.
        BREAKER_STATE.labels(name).set_function(lambda: GAUGE_VALUE[self.state])

    @property
    def state(self) -> BreakerState:
        if self._state == BreakerState.OPEN and self._clock() - self._opened_at >= self.settings.open_seconds:
            self._move_to(BreakerState.HALF_OPEN)
        return self._state

    def retry_after(self) -> float:
        """Seconds until the breaker lets a trial through (0 unless open)."""
        if self.state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self.settings.open_seconds - (self._clock() - self._opened_at))

    async def call(self, make_call: Callable[[], Awaitable[T]], *, is_failure: Callable[[BaseException], bool]
                   = lambda exc: True, says_nothing: Callable[[BaseException], bool] = lambda exc: False) -> T:
        """Run `make_call()` if the breaker allows it; record how it went. `is_failure` tells which exceptions
        say the dependency is unhealthy (a refusal it answered properly is not); `says_nothing` which say nothing
        of it at all (this process itself stalled meanwhile): those are not recorded, as a cancelled call."""
        trial = self._admit()
        started = self._clock()
        try:
            result = await make_call()
        except Exception as exc:
            if says_nothing(exc):
                BREAKER_CALLS.labels(self.name, "stalled_here").inc()
                if trial:
                    self._trials_started -= 1
                raise
            self._record(trial, Outcome(failed=is_failure(exc), slow=self._is_slow(started)))
            raise
        except BaseException:  # cancelled: no outcome to learn from; a trial gives its slot back
            if trial:
                self._trials_started -= 1
            raise
        self._record(trial, Outcome(failed=False, slow=self._is_slow(started)))
        return result

    def refuse_if_open(self) -> None:
        """Raise CircuitOpen while open, making no call: for a caller that would otherwise wait to make one."""
        if self.state == BreakerState.OPEN:
            BREAKER_CALLS.labels(self.name, "not_permitted").inc()
            raise CircuitOpen(self.name, self.retry_after())

    def _admit(self) -> bool:
        """Let a call through (True when it is a half-open trial) or raise CircuitOpen."""
        state = self.state
        if state == BreakerState.CLOSED:
            return False
        if state == BreakerState.HALF_OPEN and self._trials_started < self.settings.half_open_calls:
            self._trials_started += 1
            return True
        BREAKER_CALLS.labels(self.name, "not_permitted").inc()
        raise CircuitOpen(self.name, self.retry_after() or self.settings.open_seconds)

    def _is_slow(self, started: float) -> bool:
        return self._clock() - started >= self.settings.slow_call_seconds

    def _record(self, trial: bool, outcome: Outcome) -> None:
        BREAKER_CALLS.labels(self.name, "failure" if outcome.failed else "slow" if outcome.slow else "success").inc()
        if trial and self._state == BreakerState.HALF_OPEN:
            self._trials.append(outcome)
            if len(self._trials) >= self.settings.half_open_calls:
                opens = should_open(self._trials, self.settings, minimum=1)
                self._move_to(BreakerState.OPEN if opens else BreakerState.CLOSED)
        elif not trial and self._state == BreakerState.CLOSED:
            self._window.append(outcome)
            if should_open(self._window, self.settings, self.settings.minimum_calls):
                self._move_to(BreakerState.OPEN)
        # Outcomes of calls admitted in another state (a slow call outliving an opening) are history.

    def _move_to(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        self._window.clear()
        self._trials, self._trials_started = [], 0
        if state == BreakerState.OPEN:
            self._opened_at = self._clock()
        log.warning("circuit breaker %s: %s -> %s", self.name, previous.value, state.value)
        BREAKER_TRANSITIONS.labels(self.name, previous.value, state.value).inc()
        for listener in self._listeners:
            listener(self.name, previous, state)
