"""A table's changes as a live feed for web pages: every row written, read back from the table's changelog.

Any worker of a context can serve the whole feed: it reads every partition of the changelog itself (not as a
member of the context's group), so a watcher may be sent to any instance and come back to another. A watcher's
place in the feed is a position — the next offset per partition, the same on every instance — which the
watcher hands back on reconnecting (an SSE Last-Event-ID) to get every change it missed. The feed keeps the
last changes in memory for that; a watcher away longer is told to load its rows again (as a Kubernetes watch
answers 410 Gone), then follows the feed from there.

The feed reads only while someone watches (and `linger_s` after the last one left, for reconnects): a bread
nobody looks at pays nothing for it. On starting it reads back up to its memory's worth of recent changes, so
a watcher that was away while nobody else watched still resumes.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from aiokafka import AIOKafkaConsumer

from agents.runtime.metrics import STREAM_WATCHERS

log = logging.getLogger(__name__)

Position = dict[int, int]  # partition -> the next offset to read


class BadPosition(ValueError):
    """A position that is not one a feed handed out."""


def position_text(position: Position) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(position.items()))


def parse_position(text: str) -> Position:
    """`0:12,1:40` (partition:next offset, as `position_text` writes it)."""
    try:
        position = {int(p): int(o) for p, o in (part.split(":") for part in text.split(","))}
    except ValueError:
        raise BadPosition(f"a position is partition:offset pairs like 0:12,1:40, not {text[:80]!r}") from None
    if any(p < 0 or o < 0 for p, o in position.items()):
        raise BadPosition("partitions and offsets in a position are 0 or more")
    return position


@dataclass(frozen=True)
class Change:
    partition: int
    offset: int
    key: str
    row: dict[str, Any] | None  # None: the row was deleted


class TooOld(Exception):
    """The position asks for changes the feed no longer holds (or never read): load the rows again."""


class RecentChanges:
    """The last `size` changes read, in the order they were read, and what range of each partition they cover."""

    def __init__(self, start: Position, size: int) -> None:
        self.start = dict(start)  # the first offset held (or to be read) per partition
        self.position = dict(start)  # the next offset to read per partition
        self._changes: collections.deque[Change] = collections.deque()
        self._size = size

    def add(self, change: Change) -> None:
        self._changes.append(change)
        self.position[change.partition] = change.offset + 1
        if len(self._changes) > self._size:
            dropped = self._changes.popleft()
            self.start[dropped.partition] = dropped.offset + 1

    def since(self, position: Position) -> list[Change]:
        """Every change held after `position`; TooOld when some of them are no longer held. A position ahead
        of this feed (another instance's, further on) is fine: those changes come again as they are read."""
        if set(position) != set(self.start):
            raise TooOld(f"the position names partitions {sorted(position)}, the feed has {sorted(self.start)}")
        behind = [p for p, offset in position.items() if offset < self.start[p]]
        if behind:
            raise TooOld(f"changes of partitions {behind} after that position are no longer held")
        return [c for c in self._changes if c.offset >= position[c.partition]]


class Watcher:
    """One watcher's changes, in order, from where it started; `overflowed` when it fell too far behind to be
    kept (it reconnects with its position and catches up from the feed's memory)."""

    def __init__(self, backlog: list[Change], position: Position, limit: int) -> None:
        self.position = dict(position)
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue()  # None: the feed stopped
        self._limit = limit
        self.overflowed = False
        for change in backlog:
            self.offer(change)

    def offer(self, change: Change) -> None:
        if self._queue.qsize() >= self._limit:
            self.overflowed = True
            return
        self._queue.put_nowait(change)

    def close(self) -> None:
        self.overflowed = True
        self._queue.put_nowait(None)

    async def next(self, timeout: float) -> Change | None:
        """The next change (and the watcher's position moves past it), or None after `timeout` without one."""
        try:
            change = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if change is None:
            return None
        self.position[change.partition] = max(self.position.get(change.partition, 0), change.offset + 1)
        return change


def decode_row(value: bytes | None) -> dict[str, Any] | None:
    """A changelog message's value as the table wrote it (JSON); None for a deletion."""
    return None if value is None else json.loads(value)


class ChangelogFeed:
    """The feed of one table's changelog topic, read with a consumer of its own while watched."""

    def __init__(self, topic: str, consumer: Callable[[str], AIOKafkaConsumer], memory: int, linger_s: float,
                 watcher_limit: int = 10_000) -> None:
        self.topic = topic
        self._new_consumer = consumer
        self._memory, self._linger_s, self._watcher_limit = memory, linger_s, watcher_limit
        self._recent: RecentChanges | None = None
        self._watchers: set[Watcher] = set()
        self._joining = 0
        self._reading: asyncio.Task | None = None
        self._started: asyncio.Future | None = None

    async def watch(self, position: Position | None) -> tuple[Watcher, bool]:
        """A watcher from `position` (from now when None), and whether it starts afresh (it was None, or too
        old: the caller loads the rows it shows again)."""
        self._joining += 1  # watched already while the reading starts
        try:
            recent = await self._running()
        finally:
            self._joining -= 1
        try:
            backlog, afresh = ([], True) if position is None else (recent.since(position), False)
        except TooOld as exc:
            log.info("a watcher of %s starts again: %s", self.topic, exc)
            backlog, afresh = [], True
        # No await since reading the backlog: the watcher misses nothing read in between.
        watcher = Watcher(backlog, recent.position if afresh else position, self._watcher_limit)
        self._watchers.add(watcher)
        STREAM_WATCHERS.labels(self.topic).set(len(self._watchers))
        return watcher, afresh

    def leave(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        STREAM_WATCHERS.labels(self.topic).set(len(self._watchers))

    async def _running(self) -> RecentChanges:
        if self._reading is None:
            self._started = asyncio.get_running_loop().create_future()
            self._reading = asyncio.create_task(self._read(self._started), name=f"feed {self.topic}")
        return await asyncio.shield(self._started)

    async def _read(self, started: asyncio.Future) -> None:
        consumer = self._new_consumer(self.topic)
        try:
            await consumer.start()
            # Subscribed without a group: the consumer holds every partition of the topic once started.
            partitions = sorted(consumer.assignment())
            if not partitions:
                raise RuntimeError(f"the topic {self.topic} does not exist")
            ends, firsts = await consumer.end_offsets(partitions), await consumer.beginning_offsets(partitions)
            back = self._memory // len(partitions)
            start = {tp.partition: max(firsts[tp], ends[tp] - back) for tp in partitions}
            for tp in partitions:
                consumer.seek(tp, start[tp.partition])
            self._recent = RecentChanges(start, self._memory)
            # Read back up to where the topic ended at start before anyone watches: a new watcher starts from the
            # end (it loads its rows), one coming back finds what it missed in memory.
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                await self._read_batch(consumer)
            started.set_result(self._recent)
            unwatched_since = None
            while True:
                if self._watchers or self._joining:
                    unwatched_since = None
                elif unwatched_since is None:
                    unwatched_since = time.monotonic()
                elif time.monotonic() - unwatched_since > self._linger_s:
                    break
                await self._read_batch(consumer)
        except Exception as exc:
            log.warning("the feed of %s stopped: %s", self.topic, exc)
            if not started.done():
                started.set_exception(exc)
        finally:
            # Before any await: a watcher arriving from now on starts a new reading.
            self._recent, self._reading = None, None
            for watcher in self._watchers:  # they reconnect, and resume from another reading's memory
                watcher.close()
            await consumer.stop()

    async def _read_batch(self, consumer: AIOKafkaConsumer) -> None:
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            for message in batch:
                self._publish(Change(message.partition, message.offset, (message.key or b"").decode(),
                                     self._row(message.value)))

    def _row(self, value: bytes | None) -> dict[str, Any] | None:
        try:
            return decode_row(value)
        except ValueError:
            log.warning("a message on %s is not a JSON row; shown as deleted", self.topic)
            return None

    def _publish(self, change: Change) -> None:
        self._recent.add(change)
        for watcher in self._watchers:
            watcher.offer(change)

    async def stop(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)


async def stream(feed: ChangelogFeed, position: Position | None,
                 heartbeat_s: float) -> AsyncIterator[tuple[str, Change | None, Position]]:
    """What a watcher sees: ('afresh', None, position) first when it starts afresh, then ('change', change,
    position after it) for each change and ('heartbeat', None, position) after `heartbeat_s` without one; it
    ends when the watcher overflowed (the client reconnects from its position)."""
    watcher, afresh = await feed.watch(position)
    try:
        if afresh:
            yield "afresh", None, dict(watcher.position)
        while not watcher.overflowed:
            change = await watcher.next(heartbeat_s)
            yield ("heartbeat", None, dict(watcher.position)) if change is None \
                else ("change", change, dict(watcher.position))
    finally:
        feed.leave(watcher)
