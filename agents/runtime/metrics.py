"""bread's own Prometheus metrics, beside the HTTP ones (api/http.py) and the breaker's (agents/breaker.py).

Consumer lag is measured against what a context has *handled*, not what its client has fetched: a worker
that prefetched a thousand messages and handled none is a thousand behind.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, Collection, Iterable

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

EVENTS_CONSUMED = Counter("bread_events_consumed_total", "Events handled by a context", ["context", "topic", "type"])
EVENTS_EMITTED = Counter("bread_events_emitted_total", "Events sent by a context", ["context", "topic", "type"])
POISON_EVENTS = Counter(
    "bread_poison_events_total", "Messages dead-lettered: invalid, or their handler failed", ["context", "topic"]
)
EVENT_DELAY = Gauge("bread_event_delay_seconds", "The longest an event handled in the last seconds waited on its "
                    "topic before the context handled it: how far behind the context runs", ["context"])
DOWNSTREAM_DELAY = Gauge("bread_admission_delay_seconds", "How far behind the order edge or the gateway last heard "
                         "the contexts an order waits on run (new orders are taken slower past ORDER_SHED_FROM_S)")
ORDERS_REFUSED_BUSY = Counter("bread_orders_refused_busy_total", "New orders the order edge or the gateway refused "
                              "(503): the contexts ran too far behind, or the order's turn at the door would have "
                              "come later than ORDER_ADMISSION_WAIT_S")
ADMISSION_RATE = Gauge("bread_admission_rate_per_second", "The pace the order edge or the gateway takes new orders "
                       "at: what the contexts see through")
ADMISSION_LATE = Gauge("bread_admission_late_seconds", "How late an order is behind the door of the order edge or the "
                       "gateway: how far behind the contexts run, or how much longer than usual placing takes "
                       "(weighed); past ORDER_SHED_FROM_S the door takes new orders slower")
ADMISSION_WAIT = Histogram("bread_admission_wait_seconds", "How long new orders waited for their turn at the door",
                           buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
STREAM_WATCHERS = Gauge("bread_stream_watchers", "Clients following the live stream of a table's changes (the web "
                        "page's Mypage and tickets)", ["changelog"])
REQUESTS_WAITING = Gauge("bread_requests_waiting", "Requests from outside bread (orders other systems ask for over "
                         "Kafka) on the log and not yet handled, at the last lag sample", ["context"])
REQUESTS_UNDER_WAY = Gauge("bread_requests_under_way", "Requests from outside bread being handled now (side by side)",
                           ["context"])
REQUESTS_BEHIND = Gauge("bread_requests_behind_seconds", "How far behind the log of requests from outside bread runs: "
                        "how long the request waiting longest (or the last ones handled) waited", ["context"])
CONSUMER_LAG = Gauge("bread_consumer_lag", "Messages on a partition not yet handled by the context",
                     ["context", "topic", "partition"])
DEADLINES_PASSED = Counter("bread_saga_deadlines_passed_total", "Orders whose saga deadline passed: announced "
                           "cancelled (then=cancel), or, still not ended after their cancel, stalled and repaired "
                           "(then=repair)", ["then"])
SAGA_SECONDS = Histogram(
    "bread_saga_seconds", "Time from an order's OrderPlaced to the event that ended it, by how it ended",
    ["outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)


# The delay is the longest among the events handled in the last one or two windows: short, so the door sees the
# contexts catch up as soon as they do.
DELAY_WINDOW_S = 0.25


class Progress:
    """Per partition a context reads: the next offset it has to handle, and when that last moved; and how long
    the events it handles waited for it (their delay: handled at, less sent at)."""

    def __init__(self, context: str, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, outside: Collection[str] = ()) -> None:
        """`outside`: topics of requests from outside bread (orders other systems ask for); how far behind their log
        runs is the senders' to see, and told apart from how far behind the context runs on bread's own events."""
        self.context = context
        self.outside = frozenset(outside)
        self._clock = clock
        self._wall_clock = wall_clock  # Kafka stamps a message with the sender's wall-clock time
        self._next: dict[tuple[str, int], int] = {}
        self._moved_at: dict[tuple[str, int], float] = {}
        self._lag: dict[tuple[str, int], int] = {}
        self._sampled_at: dict[tuple[str, int], float] = {}
        # Of bread's own events and of the requests from outside: (window number, longest delay in it, longest in
        # the one before).
        self._windows = {False: (0, 0.0, 0.0), True: (0, 0.0, 0.0)}

    def handled(self, topic: str, partition: int, offset: int, sent_at: float | None = None) -> None:
        """An event was handled; `sent_at` is its Kafka timestamp, in seconds since the epoch."""
        key = (topic, partition)
        if offset + 1 > self._next.get(key, -1):
            self._next[key] = offset + 1
            self._moved_at[key] = self._clock()
        if sent_at is not None:
            now, outside = self._wall_clock(), topic in self.outside
            window, longest, before = self._current_window(now, outside)
            self._windows[outside] = (window, max(longest, now - sent_at), before)

    def _current_window(self, now: float, outside: bool) -> tuple[int, float, float]:
        window, longest, before = self._windows[outside]
        number = int(now // DELAY_WINDOW_S)
        if number == window:
            return self._windows[outside]
        return (number, 0.0, longest if number == window + 1 else 0.0)

    def how_far_behind(self) -> dict[str, Any]:
        """What GET /pipeline answers: the context and its delay on bread's own events."""
        return {"context": self.context, "delayS": round(self.delay(), 3)}

    def delay(self, outside: bool = False) -> float:
        """How far behind this context runs on bread's own events (or, `outside`, on the requests from outside
        bread), in seconds: the longest delay of those it handled in this window and the one before (0 when it
        handled none and none waits), or — when a partition had messages waiting at the last sample and has not
        moved since — how long ago that sample was."""
        _, longest, before = self._windows[outside] = self._current_window(self._wall_clock(), outside)
        now = self._clock()
        standing = [now - self._sampled_at[key] for key, lag in self._lag.items()
                    if lag > 0 and self._moved_at[key] < self._sampled_at[key] and (key[0] in self.outside) == outside]
        delay = max(0.0, longest, before, *standing)
        if not outside:
            EVENT_DELAY.labels(self.context).set(delay)
        return delay

    def waiting(self, outside: bool = False) -> int:
        """Messages on the partitions of bread's own topics (or, `outside`, of the requests from outside) that
        were not handled yet at the last sample."""
        return sum(lag for (topic, _), lag in self._lag.items() if (topic in self.outside) == outside)

    def next_offset(self, topic: str, partition: int) -> int | None:
        return self._next.get((topic, partition))

    def observe(self, topic: str, partition: int, highwater: int, position: int | None) -> int:
        """Record the lag of a partition: its highwater less the next offset to handle (or, before anything
        was handled here, the consumer's position); export it and return it."""
        key = (topic, partition)
        start = self._next.get(key, position)
        lag = max(0, highwater - start) if start is not None and highwater >= 0 else 0
        if key not in self._moved_at:
            self._moved_at[key] = self._clock()  # watched from now
        self._lag[key] = lag
        self._sampled_at[key] = self._clock()
        CONSUMER_LAG.labels(self.context, topic, str(partition)).set(lag)
        return lag

    def stalled(self, after_seconds: float) -> list[str]:
        """Partitions with lag that have not moved for `after_seconds`: a consumer that stopped working."""
        now = self._clock()
        return [f"{topic}[{partition}] {lag} behind, no progress for {now - self._moved_at[(topic, partition)]:.0f}s"
                for (topic, partition), lag in sorted(self._lag.items())
                if lag > 0 and now - self._moved_at[(topic, partition)] >= after_seconds]

    async def sample(self, partitions: Iterable[Any], highwater: Callable[[Any], int | None],
                     position: Callable[[Any], Awaitable[int | None]]) -> None:
        """Observe every partition the consumer owns now (Faust's TP or aiokafka's TopicPartition), asking the
        consumer for each one's highwater and position; forget those it owns no more."""
        owned = {(tp.topic, tp.partition): tp for tp in partitions}
        for (topic, partition), tp in owned.items():
            try:
                mark = highwater(tp)
                if mark is not None:
                    self.observe(topic, partition, mark, await position(tp))
            except Exception as exc:  # noqa: BLE001 - not fetched yet, or reassigned meanwhile: next time
                log.debug("no lag for %s[%s] yet: %s", topic, partition, exc)
        for topic, partition in set(self._lag) - set(owned):
            self.forget(topic, partition)

    def forget(self, topic: str, partition: int) -> None:
        """A partition this consumer no longer owns (a rebalance gave it away)."""
        for table in (self._next, self._moved_at, self._lag, self._sampled_at):
            table.pop((topic, partition), None)
        try:
            CONSUMER_LAG.remove(self.context, topic, str(partition))
        except KeyError:
            pass
