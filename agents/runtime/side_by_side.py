"""Handling a topic's messages side by side: those of different keys at once, up to a bound; those of one key one
after another, in the order they came. A message is acknowledged (its offset may be committed) only once it and
every message before it on its partition are handled, whatever order they finished in: a commit never passes a
message still under way, and after a crash the worker is handed again every message it had not handled.

Why: a handler that waits on others (the order worker placing a request waits on an acknowledged record, on its
events and on pay) would otherwise hold up its whole partition, one message at a time.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")


@dataclass(eq=False)
class Taken(Generic[Item]):
    partition: int
    offset: int
    item: Item
    sent_at: float | None = None
    done: bool = field(default=False)


class InOrder(Generic[Item]):
    """Per partition, the messages taken in and not yet acknowledged, in the order they were taken. Pure."""

    def __init__(self) -> None:
        self._taken: dict[int, collections.deque[Taken[Item]]] = {}
        self.under_way = 0

    def take(self, partition: int, offset: int, item: Item, sent_at: float | None = None) -> Taken[Item]:
        taken = Taken(partition, offset, item, sent_at)
        self._taken.setdefault(partition, collections.deque()).append(taken)
        self.under_way += 1
        return taken

    def done(self, taken: Taken[Item]) -> list[Item]:
        """`taken` is handled: the items that may be acknowledged now, in order — it and the handled ones after
        it, once none before it is still under way."""
        if taken.done:
            return []
        taken.done = True
        self.under_way -= 1
        queue = self._taken[taken.partition]
        ready = []
        while queue and queue[0].done:
            ready.append(queue.popleft().item)
        if not queue:
            del self._taken[taken.partition]
        return ready

    def oldest_sent_at(self) -> float | None:
        """When the longest-waiting message still under way was sent (None when none is)."""
        return min((t.sent_at for queue in self._taken.values() for t in queue
                    if not t.done and t.sent_at is not None), default=None)


class SideBySide(Generic[Item]):
    """Runs each message's handling in a task of its own: at most `bound()` at once; after the one before it of
    the same key; and acknowledges the messages in order as their handlings end. A handling that raises is a
    failure of the worker's (the shared handling dead-letters what a message itself is to blame for): `on_failure`
    is told, and nothing after it is acknowledged."""

    def __init__(self, handle: Callable[[Item], Awaitable[None]], acknowledge: Callable[[Item], Awaitable[Any]],
                 bound: Callable[[], int], on_failure: Callable[[BaseException], None]) -> None:
        self._handle, self._acknowledge, self._bound, self._on_failure = handle, acknowledge, bound, on_failure
        self.in_order: InOrder[Item] = InOrder()
        self._last_of_key: dict[bytes | None, asyncio.Task] = {}
        self._freed = asyncio.Event()
        self.failed: BaseException | None = None
        self.taken_up_to: dict[int, int] = {}  # partition -> the offset after the last message taken in

    async def take(self, partition: int, offset: int, key: bytes | None, item: Item,
                   sent_at: float | None = None) -> None:
        """Start handling `item`; return once there is room for the next (the caller's intake waits meanwhile)."""
        taken = self.in_order.take(partition, offset, item, sent_at)
        self.taken_up_to[partition] = offset + 1
        before = self._last_of_key.get(key) if key is not None else None
        task = asyncio.create_task(self._run(taken, before), name=f"handling {partition}@{offset}")
        if key is not None:
            self._last_of_key[key] = task
            task.add_done_callback(lambda _, key=key: self._last_of_key.pop(key) if self._last_of_key.get(key)
                                   is task else None)
        while self.in_order.under_way >= max(1, self._bound()) and self.failed is None:
            self._freed.clear()
            await self._freed.wait()

    async def _run(self, taken: Taken[Item], before: asyncio.Task | None) -> None:
        try:
            if before is not None:
                await asyncio.wait({before})  # its turn first; how it ended is its own business
            await self._handle(taken.item)
            for item in self.in_order.done(taken):
                await self._acknowledge(item)
        except Exception as exc:  # noqa: BLE001 - the worker's own failure: it must stop, not skip the message
            self.failed = exc
            log.critical("handling %s@%s failed; nothing after it is acknowledged: %s", taken.partition,
                         taken.offset, exc, exc_info=True)
            self._on_failure(exc)
        finally:
            self._freed.set()
