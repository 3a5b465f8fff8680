"""How late this process's event loop has been lately: what tells a call that timed out because the process itself
stalled (its CPU taken, its loop busy) from one that timed out because the other side did not answer in time.

A watch wakes every `period_s` and notes how much later than asked it woke; `worst_since(t)` is the most the loop
was late since `t`. A call whose timeout came while the loop was that late says nothing of the dependency.
"""
from __future__ import annotations

import asyncio
import collections
import time
from typing import Callable

from prometheus_client import Gauge

LOOP_LATE = Gauge("bread_event_loop_late_seconds", "How much later than asked the event loop last woke up: how "
                  "stalled this process is (its CPU taken, its loop busy)", ["service"])


class Stalls:
    def __init__(self, service: str, period_s: float = 0.05, keep_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service, self.period_s, self.keep_s, self.clock = service, period_s, keep_s, clock
        self._late: collections.deque[tuple[float, float]] = collections.deque()  # (when noted, how late)

    def noted(self, late_s: float) -> None:
        now = self.clock()
        self._late.append((now, late_s))
        while self._late and self._late[0][0] < now - self.keep_s:
            self._late.popleft()
        LOOP_LATE.labels(self.service).set(late_s)

    def worst_since(self, since: float) -> float:
        """The most the loop was late in the wake-ups noted from `since` on (a wake-up noted after a stall
        tells of it)."""
        worst = 0.0
        for at, late in reversed(self._late):
            if at < since:
                break
            worst = max(worst, late)
        return worst

    async def watch(self) -> None:
        """Note each wake-up's lateness, until cancelled."""
        while True:
            asked = self.clock() + self.period_s
            await asyncio.sleep(self.period_s)  # the watch's own period: how late it wakes is what it measures
            self.noted(max(0.0, self.clock() - asked))
