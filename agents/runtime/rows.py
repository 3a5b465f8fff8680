"""A Faust table's rows as its context reads and writes them, each write costing what it must.

A write is held until the agent has handled what it has in hand (HOLD_AT_MOST_S at most), so one order's events
handled together write its row once; then it is encoded once and sent to the table's changelog (acks=all, and no
consumer offset is committed before the broker has it), and only once the broker has it is it written to the local
store, the way Faust's recovery writes one: the store is never ahead of the changelog. An input handled again after a
crash therefore finds the table as every other worker would recover it, and a row that did not change needs no
writing. Until a write is stored, and for a while after, reads come from memory.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Iterator, NamedTuple

import faust
import orjson
from faust.streams import current_event
from faust.types import TP

from agents.runtime import tracing
from agents.runtime.tracing import KafkaHeaders

log = logging.getLogger(__name__)

Row = dict[str, Any]
# Faust's producer's send: (topic, key, value, partition, timestamp, headers) -> the broker's acknowledgement.
Send = Callable[[str, bytes, bytes | None, int, None, KafkaHeaders | None], Awaitable[asyncio.Future]]
RECENT_ROWS = 10_000  # rows kept decoded in memory after they are stored: an order's saga reads its row often
HOLD_AT_MOST_S = 0.05  # a row is held no longer than this, even while the agent always has more in hand


class ChangelogMessage(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes | None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


class Stored(NamedTuple):
    """A change as Faust's stores take one from its changelog (what its recovery hands them)."""
    key: str
    value: Row | None
    message: ChangelogMessage


class SendFailed(Exception):
    """A row never reached the changelog: nothing may be committed after it, the worker must start again."""


class Rows:
    def __init__(self, table: faust.Table, send: Send, expect_acknowledgement: Callable[[asyncio.Future], None],
                 on_failure: Callable[[BaseException], None], recent_rows: int = RECENT_ROWS) -> None:
        """`on_failure` is told of a row that did not reach the changelog: then what this worker has in memory
        may differ from what every other worker would recover, and it must handle nothing more (it stops, and
        handles its inputs again once started)."""
        self.table = table
        self._topic = table.changelog_topic.get_topic_name()
        self._send, self._expect, self._on_failure = send, expect_acknowledgement, on_failure
        # key -> (row, partition, the trace of the handling that wrote it), not sent yet
        self._held: dict[str, tuple[Row | None, int, KafkaHeaders | None]] = {}
        self._unstored: dict[str, tuple[Row | None, asyncio.Future]] = {}  # sent, not acknowledged yet
        self._recent: OrderedDict[str, Row] = OrderedDict()
        self._recent_rows = recent_rows
        self._sending: asyncio.TimerHandle | None = None
        self._in_order = asyncio.Lock()
        self._to_store: list[Stored] = []  # acknowledged, written to the store at the next turn of the loop
        self._failed: BaseException | None = None

    def get(self, key: str) -> Row | None:
        """The row as this worker last wrote it, or as its store has it."""
        if key in self._held:
            return self._held[key][0]
        if key in self._unstored:
            return self._unstored[key][0]
        row = self._recent.get(key)
        if row is not None:
            self._recent.move_to_end(key)
            return row
        row = self.table.data.get(key)  # the store itself: one lookup
        if row is not None:
            self._remember(key, row)
        return row

    def __setitem__(self, key: str, row: Row) -> None:
        self._hold(key, row)

    def __delitem__(self, key: str) -> None:
        self._hold(key, None)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def items(self) -> Iterator[tuple[str, Row]]:
        """Every row of the partitions this worker holds, its own latest writes included."""
        latest = {key: row for key, (row, _) in self._unstored.items()}
        latest.update({key: row for key, (row, *_) in self._held.items()})
        for key, row in self.table.items():
            if key not in latest:
                yield key, row
        yield from ((key, row) for key, row in latest.items() if row is not None)

    def values(self) -> Iterator[Row]:
        return (row for _, row in self.items())

    async def written(self, key: str) -> None:
        """Return once the row of `key`, as written so far, is on the changelog (acknowledged); raise if it failed
        to get there. What else is held goes out with it."""
        await self.send_held()
        unstored = self._unstored.get(key)
        if unstored is not None:
            await asyncio.shield(unstored[1])

    def _hold(self, key: str, row: Row | None) -> None:
        """Keep the change for the changelog message sent once the agent is done with what it has in hand; a
        later change of the same key in the meantime replaces it."""
        event = current_event()
        if event is None:
            raise RuntimeError(f"{self.table.name}: a row is written only while an agent handles an event")
        self._held[key] = (row, event.message.partition, tracing.trace_headers() or None)
        if self._sending is None:  # the agent sends its held rows once it has nothing in hand; this, at the latest
            self._sending = asyncio.get_running_loop().call_later(HOLD_AT_MOST_S, self._send_late)

    def _send_late(self) -> None:
        self._sending = None
        if self._held:
            asyncio.get_running_loop().create_task(self.send_held())

    async def send_held(self) -> None:
        """Send every change held so far, in the order they were made (one send at a time: a change of a row
        sent later never lands before one sent earlier); raise if any row failed to reach the changelog."""
        if self._sending is not None:
            self._sending.cancel()
            self._sending = None
        async with self._in_order:
            await self._send_in_order()

    async def _send_in_order(self) -> None:
        while self._held:
            # A held change stays readable until it is sent, and one made meanwhile replaces it, to be sent next.
            key, entry = next(iter(self._held.items()))
            row, partition, trace = entry
            value = None if row is None else orjson.dumps(row)
            try:
                sent = await self._send(self._topic, key.encode(), value, partition, None, trace)
            except Exception as exc:  # noqa: BLE001 - the producer refused it: as a send that failed
                self._fail(exc)
                raise SendFailed(f"{self._topic}: {exc}") from exc
            self._expect(sent)
            self._unstored[key] = (row, sent)
            if self._held.get(key) is entry:
                del self._held[key]
            sent.add_done_callback(lambda acknowledged, key=key, row=row, value=value, partition=partition:
                                   self._store(acknowledged, key, row, value, partition))
        if self._failed is not None:
            raise SendFailed(f"{self._topic}: a row did not reach the changelog: {self._failed}")

    def _store(self, acknowledged: asyncio.Future, key: str, row: Row | None, value: bytes | None,
               partition: int) -> None:
        latest = self._unstored.get(key, (None, None))[1] is acknowledged
        if latest:
            del self._unstored[key]
        if acknowledged.cancelled() or acknowledged.exception() is not None:
            self._fail(acknowledged.exception() if not acknowledged.cancelled() else asyncio.CancelledError())
            return
        message = ChangelogMessage(self._topic, partition, acknowledged.result().offset, key.encode(), value)
        if not self._to_store:
            asyncio.get_running_loop().call_soon(self._store_acknowledged)
        self._to_store.append(Stored(key, row, message))
        if latest:
            if row is None:
                self._recent.pop(key, None)
            else:
                self._remember(key, row)

    def _fail(self, exc: BaseException) -> None:
        self._failed = exc
        log.critical("%s: a row did not reach the changelog (%s); this worker handles nothing more", self._topic,
                     exc)
        self._on_failure(exc)

    def _store_acknowledged(self) -> None:
        """Write the rows the broker acknowledged meanwhile to the local store, in one batch."""
        stored, self._to_store = self._to_store, []
        if stored:
            self.table.apply_changelog_batch(stored)

    def _remember(self, key: str, row: Row) -> None:
        self._recent[key] = row
        self._recent.move_to_end(key)
        if len(self._recent) > self._recent_rows:
            self._recent.popitem(last=False)

    def forget_recent(self) -> None:
        """Drop the rows kept from the store (the partitions held are changing: another worker may write them),
        once the ones the broker acknowledged are in it."""
        if self._to_store:
            self._store_acknowledged()
        self._recent.clear()
