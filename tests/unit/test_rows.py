"""A table's rows as a context writes them (agents/runtime/rows.py), over Faust's in-memory store and a stand-in
for its producer: a write is seen at once, reaches the changelog once however often the agent changed the row
meanwhile, and reaches the store only once the broker has it — so the store is never ahead of the changelog."""
import asyncio
import weakref
from types import SimpleNamespace
from typing import Callable

import pytest
from faust.streams import _current_event  # the event an agent is handling: here, a stand-in

from agents.runtime import tracing
from agents.runtime.context_app import ContextApp
from agents.runtime.rows import HOLD_AT_MOST_S, SendFailed
from agents.settings import Settings


class Changelog:
    """Faust's producer as the rows use it: each send is answered when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        self.headers: list[list[tuple[str, bytes]] | None] = []
        self.answers: list[asyncio.Future] = []

    async def send(self, topic, key, value, partition, timestamp, headers) -> asyncio.Future:
        self.sent.append((topic, key, value, partition))
        self.headers.append(headers)
        self.answers.append(asyncio.get_running_loop().create_future())
        return self.answers[-1]

    def acknowledge(self, *, failed: Exception | None = None) -> None:
        for offset, answer in enumerate(self.answers):
            if not answer.done():
                answer.set_exception(failed) if failed else answer.set_result(SimpleNamespace(offset=offset))


class Handled:
    """An event an agent is handling, as far as the rows look at it: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def handling(partition: int) -> Handled:
    """Stand for an agent handling an event of `partition`; the rows write to that partition's changelog."""
    event = Handled(partition)
    _current_event.set(weakref.ref(event))
    return event  # kept by the caller: the context holds only a weak reference


@pytest.fixture
def rows(tmp_path):
    context = ContextApp("mypage", Settings.from_env({"BREAD_STORE": "memory://", "BREAD_DATA_DIR": str(tmp_path)}))
    table_rows = context.table()
    changelog = Changelog()
    acknowledged = set()
    table_rows._send, table_rows._expect = changelog.send, acknowledged.add
    table_rows._on_failure = failures.append
    return table_rows, changelog


failures: list[BaseException] = []


def stored(rows) -> dict:
    return dict(rows.table.data.items())


async def until(done: Callable[[], bool], turns: int = 100) -> None:
    """Let the loop run what the acknowledgements scheduled until `done()` holds (turns of the loop, no time)."""
    for _ in range(turns):
        if done():
            return
        await asyncio.sleep(0)
    pytest.fail(f"not so after {turns} turns of the loop")


async def acknowledged(rows, changelog, key: str, row: dict) -> None:
    """Write a row as the agent does, send it, have the broker acknowledge it, and see it stored."""
    rows[key] = row
    await rows.send_held()
    changelog.acknowledge()
    await until(lambda: key in stored(rows))


async def test_a_row_is_stored_only_once_the_broker_has_it(rows):
    rows, changelog = rows
    event = handling(2)
    rows["7"] = {"orderId": 7, "status": "Ordered"}
    assert rows.get("7")["status"] == "Ordered" and stored(rows) == {}
    await rows.send_held()
    changelog_topic = rows.table.changelog_topic.get_topic_name()
    assert changelog.sent == [(changelog_topic, b"7", b'{"orderId":7,"status":"Ordered"}', 2)]
    assert rows.get("7")["status"] == "Ordered" and stored(rows) == {}
    changelog.acknowledge()
    await until(lambda: stored(rows) != {})
    assert stored(rows) == {"7": {"orderId": 7, "status": "Ordered"}}
    assert [row["orderId"] for row in rows.values()] == [7]
    del event


async def test_changes_made_while_the_agent_handles_what_it_has_in_hand_reach_the_changelog_once(rows):
    rows, changelog = rows
    event = handling(0)
    for status in ("Ordered", "Paid", "Confirming"):
        rows["7"] = {"orderId": 7, "status": status}
    rows["8"] = {"orderId": 8, "status": "Ordered"}
    await asyncio.sleep(0)  # a turn of the loop, in which a write not held would have been sent
    assert changelog.sent == []  # held while the agent has more in hand
    await rows.send_held()       # it has none: what it changed goes out together
    assert [(key, value) for _, key, value, _ in changelog.sent] == [
        (b"7", b'{"orderId":7,"status":"Confirming"}'), (b"8", b'{"orderId":8,"status":"Ordered"}')]
    del event


async def test_a_row_is_held_a_short_while_at_most_however_busy_the_agent_is(rows):
    rows, changelog = rows
    event = handling(0)
    rows["7"] = {"orderId": 7, "status": "Ordered"}
    held_at = asyncio.get_running_loop().time()
    while not changelog.sent and asyncio.get_running_loop().time() - held_at < 1:
        await asyncio.sleep(0.005)  # ok-sleep: polling for the send, bounded by the second
    assert changelog.sent and asyncio.get_running_loop().time() - held_at < HOLD_AT_MOST_S + 0.5
    del event


async def test_a_row_that_never_reached_the_changelog_stops_the_worker(rows):
    rows, changelog = rows
    event = handling(1)
    rows.table.data["7"] = {"orderId": 7, "status": "Ordered"}  # as the changelog has it
    rows["7"] = {"orderId": 7, "status": "Paid"}
    await rows.send_held()
    failed_before = len(failures)
    changelog.acknowledge(failed=ConnectionError("the broker went away"))
    await until(lambda: len(failures) > failed_before)
    assert stored(rows)["7"]["status"] == "Ordered"
    assert isinstance(failures[-1], ConnectionError)  # the worker is told to stop: it handles nothing more
    with pytest.raises(SendFailed):
        await rows.send_held()
    del event


async def test_a_deleted_row_leaves_the_store_once_its_tombstone_is_acknowledged(rows):
    rows, changelog = rows
    event = handling(3)
    rows.table.data["7"] = {"orderId": 7}
    del rows["7"]
    assert rows.get("7") is None and "7" not in rows
    await rows.send_held()
    assert changelog.sent[-1][2] is None
    changelog.acknowledge()
    await until(lambda: stored(rows) == {})
    assert rows.get("7") is None
    del event


async def test_rows_kept_from_the_store_are_forgotten_when_the_partitions_held_change(rows):
    rows, changelog = rows
    event = handling(0)
    await acknowledged(rows, changelog, "7", {"orderId": 7, "status": "Ordered"})
    rows.table.data["7"] = {"orderId": 7, "status": "Paid"}  # another worker wrote it while it held the partition
    assert rows.get("7")["status"] == "Ordered"
    rows.forget_recent()
    assert rows.get("7")["status"] == "Paid"
    del event


def test_a_row_is_written_only_while_an_agent_handles_an_event(rows):
    rows, _ = rows
    _current_event.set(None)
    with pytest.raises(RuntimeError, match="only while an agent handles an event"):
        rows["7"] = {"orderId": 7}


async def test_a_change_sent_later_never_lands_before_one_sent_earlier(rows):
    rows, changelog = rows
    event = handling(0)
    gate = asyncio.get_running_loop().create_future()
    send, calls = changelog.send, []

    async def slow_first(*args):  # the producer's buffer is full: the first send waits for room, the next not
        calls.append(args)
        if len(calls) == 1:
            await gate
        return await send(*args)
    rows._send = slow_first
    rows["7"] = {"orderId": 7, "status": "Paid"}
    first = asyncio.ensure_future(rows.send_held())
    await until(lambda: len(calls) == 1)  # the first send waits for room
    rows["7"] = {"orderId": 7, "status": "Confirmed"}
    second = asyncio.ensure_future(rows.send_held())
    await asyncio.sleep(0)  # a turn of the loop: the second send begins, and waits behind the first
    gate.set_result(None)
    await asyncio.gather(first, second)
    assert [value for _, _, value, _ in changelog.sent] == [b'{"orderId":7,"status":"Paid"}',
                                                           b'{"orderId":7,"status":"Confirmed"}']
    assert rows.get("7")["status"] == "Confirmed"
    del event


async def test_a_row_being_sent_is_read_as_it_is_until_it_is_on_its_way(rows):
    rows, changelog = rows
    event = handling(0)
    gate = asyncio.get_running_loop().create_future()
    send = changelog.send

    waiting = asyncio.Event()

    async def waits_for_room(*args):  # the producer's buffer is full: sending takes a while
        waiting.set()
        await gate
        return await send(*args)
    rows._send = waits_for_room
    rows["6"] = {"orderId": 6, "status": "Ordered"}
    rows["7"] = {"orderId": 7, "status": "Confirming"}
    sending = asyncio.ensure_future(rows.send_held())
    await waiting.wait()
    # The agent goes on meanwhile: the next event of order 7 finds the row that is being sent.
    assert rows.get("6")["status"] == "Ordered" and rows.get("7")["status"] == "Confirming"
    rows["7"] = {"orderId": 7, "status": "Confirmed"}
    gate.set_result(None)
    await sending
    assert [value for _, _, value, _ in changelog.sent][-1] == b'{"orderId":7,"status":"Confirmed"}'
    assert rows.get("7")["status"] == "Confirmed"
    del event


async def test_rows_acknowledged_but_not_yet_stored_are_stored_before_the_recent_ones_are_forgotten(rows):
    rows, changelog = rows
    event = handling(0)
    # The acknowledgement came; the store is written at the next turn of the loop, and a rebalance began first.
    rows["7"] = {"orderId": 7, "status": "Paid"}
    await rows.send_held()
    changelog.acknowledge()
    await until(lambda: "7" not in rows._unstored)  # acknowledged, its store write queued for the next turn
    assert "7" not in stored(rows)
    rows.forget_recent()
    assert rows.get("7")["status"] == "Paid"
    del event


async def test_a_row_waited_for_is_on_the_changelog_when_the_wait_ends(rows):
    rows, changelog = rows
    event = handling(1)
    rows["9"] = {"orderId": 9, "status": "Ordered"}
    waiting = asyncio.create_task(rows.written("9"))
    await until(lambda: len(changelog.sent) == 1)  # sent at once, not held: someone waits for it
    assert not waiting.done()
    changelog.acknowledge()
    await waiting
    await rows.written("9")  # on the changelog already: no wait
    rows["10"] = {"orderId": 10, "status": "Ordered"}
    failing = asyncio.create_task(rows.written("10"))
    await until(lambda: len(changelog.sent) == 2)
    changelog.acknowledge(failed=RuntimeError("the broker refused it"))
    with pytest.raises(RuntimeError, match="refused"):
        await failing
    del event


async def test_a_row_goes_to_the_changelog_with_the_trace_of_the_handling_that_wrote_it(rows):
    table_rows, changelog = rows
    event = handling(1)
    table_rows["6"] = {"orderId": 6}  # tracing off: no header
    await table_rows.send_held()
    tracing.start("console", "http://localhost:4318", "bread-test")
    try:
        with tracing.span("mypage handles a row"):
            table_rows["7"] = {"orderId": 7}
            traceparent = tracing.traceparent()
        await table_rows.send_held()
    finally:
        tracing.stop()
    assert changelog.headers == [None, [("traceparent", traceparent.encode())]]
    del event
