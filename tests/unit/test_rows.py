"""A table's rows as a context writes them (agents/runtime/rows.py), over Faust's in-memory store and a stand-in
for its producer: a write is seen at once, reaches the changelog once however often the agent changed the row
meanwhile, and reaches the store only once the broker has it — so the store is never ahead of the changelog."""
import asyncio
import weakref
from types import SimpleNamespace

import pytest
from faust.streams import _current_event  # the event an agent is handling: here, a stand-in

from agents.runtime.context_app import ContextApp
from agents.runtime.rows import SendFailed
from agents.settings import Settings


class Changelog:
    """Faust's producer as the rows use it: each send is answered when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        self.answers: list[asyncio.Future] = []

    async def send(self, topic, key, value, partition, timestamp, headers) -> asyncio.Future:
        self.sent.append((topic, key, value, partition))
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
    return table_rows, changelog


def stored(rows) -> dict:
    return dict(rows.table.data.items())


async def test_a_row_is_read_at_once_and_stored_only_once_the_broker_has_it(rows):
    rows, changelog = rows
    event = handling(2)
    rows["7"] = {"orderId": 7, "status": "Ordered"}
    assert rows.get("7")["status"] == "Ordered" and stored(rows) == {}
    await rows.send_held()
    assert changelog.sent == [(rows.table.changelog_topic.get_topic_name(), b"7", b'{"orderId":7,"status":"Ordered"}', 2)]
    assert rows.get("7")["status"] == "Ordered" and stored(rows) == {}
    changelog.acknowledge()
    await asyncio.sleep(0)
    assert stored(rows) == {"7": {"orderId": 7, "status": "Ordered"}}
    assert [row["orderId"] for row in rows.values()] == [7]
    del event


async def test_changes_made_while_the_agent_handles_what_it_has_in_hand_reach_the_changelog_once(rows):
    rows, changelog = rows
    event = handling(0)
    for status in ("Ordered", "Paid", "Confirming"):
        rows["7"] = {"orderId": 7, "status": status}
    rows["8"] = {"orderId": 8, "status": "Ordered"}
    await asyncio.sleep(0)  # the agent is done with what it had: the held changes go out
    assert [(key, value) for _, key, value, _ in changelog.sent] == [
        (b"7", b'{"orderId":7,"status":"Confirming"}'), (b"8", b'{"orderId":8,"status":"Ordered"}')]
    del event


async def test_a_row_that_never_reached_the_changelog_is_not_stored_and_stops_the_next_commit(rows):
    rows, changelog = rows
    event = handling(1)
    rows.table.data["7"] = {"orderId": 7, "status": "Ordered"}  # as the changelog has it
    rows["7"] = {"orderId": 7, "status": "Paid"}
    await rows.send_held()
    changelog.acknowledge(failed=ConnectionError("the broker went away"))
    await asyncio.sleep(0)
    assert stored(rows)["7"]["status"] == "Ordered"
    assert rows.get("7")["status"] == "Ordered"  # reads go back to what the changelog has: the input is handled again
    with pytest.raises(SendFailed):
        await rows.send_held()
    del event


async def test_a_deleted_row_is_a_tombstone_on_the_changelog_and_gone_from_the_store_once_acknowledged(rows):
    rows, changelog = rows
    event = handling(3)
    rows.table.data["7"] = {"orderId": 7}
    del rows["7"]
    assert rows.get("7") is None and "7" not in rows
    await rows.send_held()
    assert changelog.sent[-1][2] is None
    changelog.acknowledge()
    await asyncio.sleep(0)
    assert stored(rows) == {}
    del event


async def test_rows_kept_from_the_store_are_forgotten_when_the_partitions_held_change(rows):
    rows, changelog = rows
    event = handling(0)
    rows["7"] = {"orderId": 7, "status": "Ordered"}
    await rows.send_held()
    changelog.acknowledge()
    await asyncio.sleep(0)
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
