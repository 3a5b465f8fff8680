"""Admission at the door new orders come in by (the order edge, and the gateway in front of it): take new orders
at the pace the contexts see them through, and let a caller wait its turn for that pace rather than turn it away.

Past its capacity bread would otherwise take every order and let each wait longer than the one before: the
contexts downstream fall behind, and every customer waits for a confirmation that comes later and later.
Refusing a share of new orders at once, in proportion to how far behind the contexts ran, was tried: callers that
ask again at once (siege, most load balancers) met a storm of instant 503s that cost the CPU the saga needed,
and the share swung between all and none (docs/performance.md).

So the door paces. It gives turns at `rate` a second, first come first served: each caller is given the next
free moment, waits for it, at most `wait_s`; one whose moment would come later is refused at once (503, with that
moment as Retry-After). A closed-loop caller so slows to bread's pace instead of spinning. The rate follows how
far behind the contexts run, heard a few times a second (the delay of the events they handled in the last
fraction of a second, so it falls as soon as they catch up), and how much longer than usual the orders let in
took to place (the call behind the door: at the gateway the edge, at the edge pay and the events'
acknowledgements) — an order a quarter second late to be placed is as late as one a second late on a topic:
- no later than `shed_from_s`, and the rate in use: it grows by about its square root (probing gently);
- later, and later than at the last reading: it falls towards the rate taken lately times `shed_from_s` / how
  late, by at most a fifth per reading (deeper cuts swung it, and a door that took nothing for a moment would
  have fallen to nothing);
- later, but less than at the last reading: it holds — so it does not undershoot while the backlog drains;
- the contexts `shed_all_s` behind or more: the door is closed, and every new order is refused at once.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

# Placing an order this many times less late than an event waits on a topic is as bad: a jammed edge holds its
# callers long before the contexts fall behind, and once it holds them for a second it is far past its capacity.
INTAKE_WEIGHT = 4.0
# A reading whose placements took no more than this many times the usual time, and this much more, teaches the
# usual time: one that queued does not.
QUIET_INTAKE, QUIET_SLACK_S = 2.0, 0.02
MOST_CUT = 0.8         # the pace falls to no less than this share of itself per reading: deeper cuts swung it
INTAKE_SAMPLE = 5       # placements a reading needs to tell anything of the intake's time
USUAL_READINGS = 40     # "usual" averages over this many readings (ten seconds at the default poll)


class Busy(Exception):
    """A new order refused because bread cannot take it in time; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class DoorSettings:
    shed_from_s: float               # the contexts this far behind: take fewer new orders
    shed_all_s: float                # this far behind: take none
    wait_s: float                    # a caller waits its turn at most this long
    initial_per_s: float = 1000.0    # the pace at first: no holding back until the contexts fall behind
    minimum_per_s: float = 1.0       # never slower while open, so the contexts' catching up is seen
    maximum_per_s: float = 10_000.0
    burst_s: float = 0.05            # a quiet door lets this long's worth of turns through at once

    def __post_init__(self) -> None:
        if not 0 < self.shed_from_s < self.shed_all_s:
            raise ValueError("0 < shed_from_s < shed_all_s")
        if self.wait_s < 0 or self.burst_s < 0:
            raise ValueError("wait_s and burst_s are not negative")
        if not 0 < self.minimum_per_s <= self.initial_per_s <= self.maximum_per_s:
            raise ValueError("0 < minimum_per_s <= initial_per_s <= maximum_per_s")


class Door:
    """The pace new orders are taken at, and each caller's turn. Pure: it learns only what it is told, and
    tells a caller how long to wait rather than waiting itself."""

    def __init__(self, settings: DoorSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self._clock = settings, clock
        self.rate = settings.initial_per_s
        self.delay_s = 0.0        # how far behind the contexts ran, when last heard
        self.intake_s = 0.0       # how long the orders taken took to place, on average, when last heard
        self.usual_intake_s: float | None = None
        self._next_free = -math.inf
        self._given = 0           # turns given since the contexts were last heard
        self._placed, self._placing_s = 0, 0.0  # orders placed since, and the time they took in all
        self._heard_at = self._judged_at = clock()

    @property
    def closed(self) -> bool:
        return self.delay_s >= self.settings.shed_all_s

    def placed(self, took_s: float) -> None:
        """An order given its turn took `took_s` to place (the call behind the door: pay, the events)."""
        self._placed += 1
        self._placing_s += took_s

    def heard(self, delay_s: float) -> None:
        """The contexts run `delay_s` behind: the pace to take new orders at from now, from that and from how much
        longer than usual the orders let in lately took to place (`late_s`)."""
        now, settings, before = self._clock(), self.settings, self.late_s
        taken_per_s = self._given / max(now - self._heard_at, 1e-3)
        self._given, self._heard_at = 0, now
        self._judge_intake(now)
        self.delay_s = delay_s
        if self.closed:
            return  # nothing taken says nothing of the pace: the door reopens at the pace it closed at
        late = self.late_s
        if late > settings.shed_from_s:
            if late >= before:  # towards what was taken, in proportion; a fifth at most per reading
                towards = min(self.rate, taken_per_s) * settings.shed_from_s / late
                self.rate = max(settings.minimum_per_s, towards, self.rate * MOST_CUT)
        elif 2 * taken_per_s >= self.rate:
            self.rate = min(settings.maximum_per_s, self.rate + max(1.0, math.sqrt(self.rate)))

    @property
    def late_s(self) -> float:
        """How late an order is now, behind the door: the contexts' delay, or placing's time over the usual
        (weighed)."""
        return max(self.delay_s, INTAKE_WEIGHT * (self.intake_s - (self.usual_intake_s or self.intake_s)))

    def _judge_intake(self, now: float) -> None:
        """How long placing takes now, once INTAKE_SAMPLE placements are in (or a second's worth at a slow pace),
        and — from the readings that did not queue — how long it usually takes."""
        if self._placed < INTAKE_SAMPLE and not (self._placed and now - self._judged_at >= 1.0):
            return
        self.intake_s = self._placing_s / self._placed
        self._placed, self._placing_s, self._judged_at = 0, 0.0, now
        if self.usual_intake_s is None:
            self.usual_intake_s = self.intake_s
        elif self.intake_s <= QUIET_INTAKE * self.usual_intake_s + QUIET_SLACK_S:
            self.usual_intake_s += (self.intake_s - self.usual_intake_s) / USUAL_READINGS

    def turn(self) -> float:
        """Seconds this caller is to wait for its turn (0: at once), or Busy when the door is closed or the turn
        would come later than a caller may wait."""
        if self.closed:
            raise Busy(f"bread is busy: orders take {self.delay_s:.1f}s longer than usual to be confirmed; this "
                       "order was not taken, try again later", retry_after=max(1, math.ceil(self.delay_s)))
        now = self._clock()
        moment = max(self._next_free, now - self.settings.burst_s)
        wait = max(0.0, moment - now)
        if wait > self.settings.wait_s:
            raise Busy(f"bread is busy: it takes {self.rate:.0f} new orders a second now, and the next turn is "
                       f"{wait:.1f}s away, more than the {self.settings.wait_s:g}s an order may wait; this order was "
                       "not taken, try again later", retry_after=max(1, math.ceil(wait)))
        self._next_free = moment + 1 / self.rate
        self._given += 1
        return wait
