"""How far behind the contexts run, as the order edge and the gateway learn it for their door
(agents/order/admission.py).

Every Faust worker answers GET /pipeline with the delay of the events it handles (`Progress.delay`); a watcher
asks each context it depends on every few hundred milliseconds and takes the longest. A context that does not
answer says nothing: its last answer counts until it is stale, then it is left out (its own health checks and
the breaker deal with a context that is down; admission is about one that is slow).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Mapping

import aiohttp

from agents.runtime.metrics import DOWNSTREAM_DELAY

log = logging.getLogger(__name__)

STALE_AFTER_POLLS = 4


class PipelineWatch:
    def __init__(self, http: aiohttp.ClientSession, urls: Mapping[str, str], every_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._http = http
        self._urls = dict(urls)  # context -> where it answers
        self._every_s = every_s
        self._clock = clock
        self._heard: dict[str, tuple[float, float]] = {}  # context -> (its delay, when it said so)

    def heard(self, context: str, delay_s: float) -> None:
        self._heard[context] = (delay_s, self._clock())

    def delay(self) -> float:
        """The longest delay among the contexts heard from lately, in seconds (0 when none was)."""
        fresh_since = self._clock() - STALE_AFTER_POLLS * self._every_s
        return max((delay for delay, at in self._heard.values() if at >= fresh_since), default=0.0)

    async def ask(self) -> None:
        """Ask every context once, together."""
        await asyncio.gather(*(self._ask(context, url) for context, url in self._urls.items()))
        DOWNSTREAM_DELAY.set(self.delay())

    async def _ask(self, context: str, url: str) -> None:
        try:
            async with self._http.get(f"{url}/pipeline",
                                      timeout=aiohttp.ClientTimeout(total=2 * self._every_s)) as answer:
                if answer.status == 200:
                    self.heard(context, float((await answer.json())["delayS"]))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
            log.debug("no pipeline delay from %s: %s", context, exc)

    async def run(self, tell: Callable[[float], None]) -> None:
        """Ask again and again, until cancelled, and `tell` the delay each time."""
        while True:
            await self.ask()
            tell(self.delay())
            await asyncio.sleep(self._every_s)  # the polling period itself
