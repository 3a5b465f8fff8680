"""The log of requests from outside bread (orders other systems ask for), as a context handles it: read ahead of
its handling, so an invalid request is dead-lettered at once (check_ahead.py); handled side by side, at most
`bound()` at once and those of one key one after another (side_by_side.py), each message acknowledged to Faust
once it and every one before it on its partition are handled; and how far behind it runs, for its senders to see
(GET /pipeline's `requests`, and metrics)."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Mapping, NamedTuple

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faust.types import TP

from agents.events import Event
from agents.runtime.check_ahead import CheckAhead
from agents.runtime.consuming import Check, Received, invalid
from agents.runtime.metrics import REQUESTS_BEHIND, REQUESTS_UNDER_WAY, REQUESTS_WAITING, Progress
from agents.runtime.side_by_side import SideBySide
from agents.settings import Settings


class InHand(NamedTuple):
    """A message handled side by side: as bread reads it, and as Faust acknowledges it."""
    received: Received
    event: faust.EventT


class RequestLog:
    def __init__(self, context: str, topic: str, app: faust.App, settings: Settings, progress: Progress,
                 handling: Callable[[Received], Awaitable[None]], bound: Callable[[], int],
                 checks: Mapping[str, Check], send: Callable[[Event], Awaitable[Any]],
                 on_failure: Callable[[BaseException], None]) -> None:
        self.topic, self._app, self._progress, self._handling = topic, app, progress, handling
        self.ahead = CheckAhead(
            topic, lambda: AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                            enable_auto_commit=False, fetch_max_wait_ms=settings.kafka_fetch_poll_ms),
            held=lambda: {tp.partition for tp in app.consumer.assignment() if tp.topic == topic},
            taken=lambda partition: self.side_by_side.taken_up_to.get(partition), reading_from=self._reading_from,
            invalid=lambda received: invalid(context, received, checks), send=send)
        self.side_by_side: SideBySide[InHand] = SideBySide(self._unless_dealt_with, self._acknowledge, bound,
                                                           on_failure)
        REQUESTS_WAITING.labels(context).set_function(lambda: progress.waiting(outside=True))
        REQUESTS_UNDER_WAY.labels(context).set_function(lambda: self.side_by_side.in_order.under_way)
        REQUESTS_BEHIND.labels(context).set_function(lambda: self.backlog()["behindS"])

    async def take(self, message: faust.EventT, received: Received) -> None:
        """Hand a message on, to be handled beside the others (it waits while `bound()` are under way)."""
        raw = message.message
        await self.side_by_side.take(raw.partition, raw.offset, raw.key, InHand(received, message), raw.timestamp)

    async def _reading_from(self, partition: int) -> int | None:
        """Where the handling has got to on a partition: what it took last, or the consumer's position."""
        if partition in self.side_by_side.taken_up_to:
            return self.side_by_side.taken_up_to[partition]
        try:
            return await asyncio.wait_for(self._app.consumer.position(TP(self.topic, partition)), 1.0)
        except (asyncio.TimeoutError, KafkaError):  # no position yet: next time round
            return None

    async def _unless_dealt_with(self, in_hand: InHand) -> None:
        received = in_hand.received
        if await self.ahead.dealt_with(received):  # dead-lettered when it was read ahead
            self._progress.handled(received.topic, received.partition, received.offset, received.sent_at)
        else:
            await self._handling(received)

    @staticmethod
    async def _acknowledge(in_hand: InHand) -> None:
        in_hand.event.ack()

    def backlog(self) -> dict[str, Any]:
        """How far behind the log runs: requests waiting on it (at the last lag sample), those under way now, and
        how long the one waiting longest has waited."""
        oldest = self.side_by_side.in_order.oldest_sent_at()
        behind = max(self._progress.delay(outside=True), 0.0 if oldest is None else time.time() - oldest)
        return {"waiting": self._progress.waiting(outside=True), "underWay": self.side_by_side.in_order.under_way,
                "behindS": round(behind, 3)}
