"""A Faust table's rows as its context reads and writes them, each write costing what it must.

A write is held until the agent has handled what it has in hand, so one order's events handled together write
its row once; then it is encoded once and sent to the table's changelog (acks=all, and no consumer offset is
committed before the broker has it), and only once the broker has it is it written to the local store, the way
Faust's recovery writes one: the store is never ahead of the changelog. An input handled again after a crash
therefore finds the table as every other worker would recover it, and a row that did not change needs no
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

log = logging.getLogger(__name__)

Row = dict[str, Any]
# Faust's producer's send: (topic, key, value, partition, timestamp, headers) -> the broker's acknowledgement.
Send = Callable[[str, bytes, bytes | None, int, None, None], Awaitable[asyncio.Future]]
RECENT_ROWS = 10_000  # rows kept decoded in memory after they are stored: an order's saga reads its row often


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
                 recent_rows: int = RECENT_ROWS) -> None:
        self.table = table
        self._topic = table.changelog_topic.get_topic_name()
        self._send, self._expect = send, expect_acknowledgement
        self._held: dict[str, tuple[Row | None, int]] = {}          # key -> (row, partition), not sent yet
        self._unstored: dict[str, tuple[Row | None, asyncio.Future]] = {}  # sent, not acknowledged yet
        self._recent: OrderedDict[str, Row] = OrderedDict()
        self._recent_rows = recent_rows
        self._sending: asyncio.Task | None = None
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
        row = self.table.get(key)
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
        latest.update({key: row for key, (row, _) in self._held.items()})
        for key, row in self.table.items():
            if key not in latest:
                yield key, row
        yield from ((key, row) for key, row in latest.items() if row is not None)

    def values(self) -> Iterator[Row]:
        return (row for _, row in self.items())

    def _hold(self, key: str, row: Row | None) -> None:
        """Keep the change for the changelog message sent once the agent is done with what it has in hand; a
        later change of the same key in the meantime replaces it."""
        event = current_event()
        if event is None:
            raise RuntimeError(f"{self.table.name}: a row is written only while an agent handles an event")
        self._held[key] = (row, event.message.partition)
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send_held())

    async def _send_held(self) -> None:
        try:
            await self.send_held()
        finally:
            self._sending = None

    async def send_held(self) -> None:
        """Send every change held so far; raise if any row failed to reach the changelog."""
        while self._held:
            held, self._held = self._held, {}
            for key, (row, partition) in held.items():
                value = None if row is None else orjson.dumps(row)
                try:
                    sent = await self._send(self._topic, key.encode(), value, partition, None, None)
                except Exception as exc:  # noqa: BLE001 - the producer refused it: as a send that failed
                    self._failed = exc
                    raise SendFailed(f"{self._topic}: {exc}") from exc
                self._expect(sent)
                self._unstored[key] = (row, sent)
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
            self._failed = acknowledged.exception() if not acknowledged.cancelled() else asyncio.CancelledError()
            log.error("%s: the change of %s did not reach the broker: %s", self._topic, key, self._failed)
            return
        message = ChangelogMessage(self._topic, partition, acknowledged.result().offset, key.encode(), value)
        self.table.apply_changelog_batch([Stored(key, row, message)])
        if latest:
            if row is None:
                self._recent.pop(key, None)
            else:
                self._remember(key, row)

    def _remember(self, key: str, row: Row) -> None:
        self._recent[key] = row
        self._recent.move_to_end(key)
        if len(self._recent) > self._recent_rows:
            self._recent.popitem(last=False)

    def forget_recent(self) -> None:
        """Drop the rows kept from the store (the partitions held are changing: another worker may write them)."""
        self._recent.clear()
