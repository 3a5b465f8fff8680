"""Messages handled side by side: different keys at once up to a bound, one key in order, acknowledged in order."""
from __future__ import annotations

import asyncio
from typing import Callable

from agents.runtime.side_by_side import InOrder, SideBySide


class Handlings:
    """Handlings that end when the test says so, recording what started, ended and was acknowledged."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []
        self.acknowledged: list[str] = []
        self.failures: list[BaseException] = []
        self._may_end: dict[str, asyncio.Event] = {}
        self._fail = fail
        self._changed = asyncio.Event()

    def gate(self, item: str) -> asyncio.Event:
        return self._may_end.setdefault(item, asyncio.Event())

    async def handle(self, item: str) -> None:
        self.started.append(item)
        self._changed.set()
        await self.gate(item).wait()
        self.ended.append(item)  # the task goes on to its acknowledgements before anyone woken here looks
        self._changed.set()
        if item in self._fail:
            raise RuntimeError(f"{item} could not be handled")

    async def acknowledge(self, item: str) -> None:
        self.acknowledged.append(item)

    def failed(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self._changed.set()

    async def until(self, condition: Callable[[], bool], within_s: float = 2.0) -> None:
        """Return once `condition()` holds, checked whenever a handling started or ended; fail after `within_s`."""
        async def waiting() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(waiting(), within_s)

    def side_by_side(self, bound: int) -> SideBySide[str]:
        return SideBySide(self.handle, self.acknowledge, lambda: bound, self.failed)


async def test_messages_of_different_keys_are_handled_at_once_yet_acknowledged_in_order():
    handlings = Handlings()
    side = handlings.side_by_side(bound=10)
    for offset, key in enumerate(["a", "b", "c"]):
        await side.take(0, offset, key.encode(), f"{key}@{offset}")
    await handlings.until(lambda: handlings.started == ["a@0", "b@1", "c@2"])
    handlings.gate("c@2").set()
    handlings.gate("b@1").set()
    await handlings.until(lambda: {"b@1", "c@2"} <= set(handlings.ended))
    assert handlings.acknowledged == []  # the first is still under way: nothing after it may be committed
    assert side.in_order.under_way == 1
    handlings.gate("a@0").set()
    await handlings.until(lambda: "a@0" in handlings.ended)
    assert handlings.acknowledged == ["a@0", "b@1", "c@2"]
    assert side.in_order.under_way == 0


async def test_partitions_are_acknowledged_apart():
    handlings = Handlings()
    side = handlings.side_by_side(bound=10)
    await side.take(0, 7, b"a", "a@0:7")
    await side.take(1, 3, b"b", "b@1:3")
    handlings.gate("b@1:3").set()
    await handlings.until(lambda: "b@1:3" in handlings.ended)
    assert handlings.acknowledged == ["b@1:3"]


async def test_messages_of_one_key_are_handled_one_after_the_other():
    handlings = Handlings()
    side = handlings.side_by_side(bound=10)
    await side.take(0, 0, b"a", "first")
    await side.take(0, 1, b"b", "other")
    await side.take(0, 2, b"a", "second")
    await handlings.until(lambda: handlings.started == ["first", "other"])
    assert "second" not in handlings.started  # it waits for the first of its key, however long that takes
    handlings.gate("first").set()
    await handlings.until(lambda: handlings.started == ["first", "other", "second"])


async def test_the_intake_waits_while_the_bound_is_reached():
    handlings = Handlings()
    side = handlings.side_by_side(bound=2)
    await side.take(0, 0, b"a", "a")
    taking_b = asyncio.create_task(side.take(0, 1, b"b", "b"))
    await handlings.until(lambda: "b" in handlings.started)
    assert not taking_b.done()  # two under way: the intake waits
    handlings.gate("b").set()  # b ends, and a is still under way before it: room all the same
    await asyncio.wait_for(taking_b, 2)
    assert handlings.acknowledged == []
    taking_c = asyncio.create_task(side.take(0, 2, b"c", "c"))
    await handlings.until(lambda: "c" in handlings.started)
    assert not taking_c.done()
    handlings.gate("a").set()
    await asyncio.wait_for(taking_c, 2)
    assert handlings.acknowledged == ["a", "b"]


async def test_a_handling_that_fails_stops_the_worker_with_nothing_after_it_acknowledged():
    handlings = Handlings(fail={"a"})
    side = handlings.side_by_side(bound=10)
    await side.take(0, 0, b"a", "a")
    await side.take(0, 1, b"b", "b")
    handlings.gate("b").set()
    handlings.gate("a").set()
    await handlings.until(lambda: bool(handlings.failures) and "b" in handlings.ended)
    assert [str(f) for f in handlings.failures] == ["a could not be handled"]
    assert handlings.acknowledged == []
    assert side.failed is handlings.failures[0]


def test_the_oldest_message_under_way_tells_how_far_behind_the_log_runs():
    in_order: InOrder[str] = InOrder()
    first = in_order.take(0, 0, "a", sent_at=100.0)
    in_order.take(1, 0, "b", sent_at=90.0)
    in_order.take(0, 1, "c", sent_at=110.0)
    assert in_order.oldest_sent_at() == 90.0
    assert in_order.done(first) == ["a"]
    assert in_order.done(first) == []  # told twice: once is what counts
    assert in_order.under_way == 2
