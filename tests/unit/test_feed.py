"""The live feed of a table's changes: positions, what a returning watcher gets, and the reading itself with a
stand-in for the Kafka consumer (the real one is in the end-to-end tests)."""
import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from agents.runtime.feed import (
    BadPosition,
    Change,
    ChangelogFeed,
    RecentChanges,
    TooOld,
    parse_position,
    position_text,
    stream,
)
from api.faustweb import server_sent


def test_a_position_reads_back_as_it_was_written():
    assert parse_position(position_text({1: 40, 0: 12})) == {0: 12, 1: 40}
    assert position_text({1: 40, 0: 12}) == "0:12,1:40"


@pytest.mark.parametrize("text", ["", "0", "0:x", "a:1", "0:1,,1:2", "-1:3", "0:-3"])
def test_a_position_not_handed_out_by_a_feed_is_refused(text):
    with pytest.raises(BadPosition):
        parse_position(text)


def change(partition, offset, key="1", row=None):
    return Change(partition, offset, key, {"orderId": int(key)} if row is None else row)


def test_a_returning_watcher_gets_exactly_the_changes_after_its_position():
    recent = RecentChanges({0: 5, 1: 0}, size=10)
    for c in (change(0, 5), change(1, 0), change(0, 6), change(1, 1)):
        recent.add(c)
    assert recent.position == {0: 7, 1: 2}
    assert recent.since({0: 6, 1: 0}) == [change(1, 0), change(0, 6), change(1, 1)]
    assert recent.since({0: 7, 1: 2}) == []
    assert recent.since({0: 9, 1: 2}) == []  # ahead (another instance's): those come as they are read


def test_a_watcher_away_longer_than_the_feed_remembers_starts_afresh():
    recent = RecentChanges({0: 0}, size=2)
    for offset in range(4):
        recent.add(change(0, offset))
    assert recent.start == {0: 2}
    assert recent.since({0: 2}) == [change(0, 2), change(0, 3)]
    with pytest.raises(TooOld):
        recent.since({0: 1})
    with pytest.raises(TooOld):
        recent.since({0: 2, 1: 0})  # a partition this feed does not have


def test_every_message_of_a_stream_carries_the_position():
    assert server_sent({0: 3, 1: 4}, "row", {"orderId": 1}) == b'id: 0:3,1:4\nevent: row\ndata: {"orderId":1}\n\n'
    assert server_sent({0: 3}) == b"id: 0:3\n\n"


class Changelog:
    """A stand-in for AIOKafkaConsumer subscribed to a topic without a group (so holding every partition of
    `topic`, when that is the one): its messages per partition, fetched in order."""

    def __init__(self, topic, messages, subscribed, partitions=2):
        self.topic, self.messages, self.subscribed, self.partitions = topic, messages, subscribed, partitions
        self.next = {}
        self.stopped = False

    async def start(self):
        pass

    async def stop(self):
        self.stopped = True

    def assignment(self):
        return {TopicPartition(self.topic, p) for p in range(self.partitions)} if self.subscribed == self.topic \
            else set()

    async def end_offsets(self, partitions):
        return {tp: len(self.messages.get(tp.partition, [])) for tp in partitions}

    async def beginning_offsets(self, partitions):
        return {tp: 0 for tp in partitions}

    def seek(self, tp, offset):
        self.next[tp.partition] = offset

    async def position(self, tp):
        return self.next[tp.partition]

    async def getmany(self, timeout_ms):
        batches = {}
        for partition, offset in self.next.items():
            waiting = self.messages.get(partition, [])[offset:]
            if waiting:
                batches[TopicPartition(self.topic, partition)] = [
                    SimpleNamespace(partition=partition, offset=offset + i, key=key.encode(), value=value)
                    for i, (key, value) in enumerate(waiting)]
                self.next[partition] = offset + len(waiting)
        if not batches:
            await asyncio.sleep(timeout_ms / 1000 / 50)  # ok-sleep: a stand-in broker's empty fetch wait
        return batches


async def test_a_feed_starting_reads_back_what_it_may_keep_then_follows_new_changes():
    messages = {0: [("1", b'{"orderId":1,"status":"Ordered"}')], 1: [("2", b'{"orderId":2}'), ("4", None)]}
    log = Changelog("t", messages, "t")
    feed = ChangelogFeed("t", lambda name: log, memory=10, linger_s=0)
    seen = stream(feed, {0: 0, 1: 0}, heartbeat_s=5)  # a page that saw nothing yet, back after a restart
    got = [await anext(seen) for _ in range(3)]
    assert {(c.partition, c.offset, c.key) for _, c, _ in got} == {(0, 0, "1"), (1, 0, "2"), (1, 1, "4")}
    assert next(c for _, c, _ in got if c.key == "4").row is None  # a deletion
    assert got[-1][2] == {0: 1, 1: 2}
    messages[0].append(("1", b'{"orderId":1,"status":"Paid"}'))
    kind, latest, position = await anext(seen)
    assert (kind, latest.row["status"], position) == ("change", "Paid", {0: 2, 1: 2})
    await seen.aclose()
    await feed.stop()


async def test_a_watcher_resumes_from_its_position_missing_nothing():
    messages = {0: [("1", b'{"orderId":1,"n":0}')], 1: []}
    feed = ChangelogFeed("t", lambda name: Changelog("t", messages, name), memory=10, linger_s=30)
    first = stream(feed, None, heartbeat_s=5)
    _, _, position = await anext(first)  # afresh: the page loads its rows, and has this position
    await first.aclose()  # the page lost its connection here...
    messages[0] += [("1", b'{"orderId":1,"n":1}'), ("3", b'{"orderId":3,"n":2}')]
    messages[1] += [("2", b'{"orderId":2,"n":3}')]
    again = stream(feed, position, heartbeat_s=5)  # ...and came back with the position it had
    missed = [await anext(again) for _ in range(3)]
    assert sorted(c.row["n"] for _, c, _ in missed) == [1, 2, 3]
    assert missed[-1][2] == {0: 3, 1: 1}
    await again.aclose()
    await feed.stop()


async def test_a_new_watcher_starts_from_now():
    feed = ChangelogFeed("t", lambda name: Changelog("t", {1: [("2", b'{"orderId":2}')]}, name), memory=10, linger_s=30)
    seen = stream(feed, None, heartbeat_s=0.05)
    assert await anext(seen) == ("afresh", None, {0: 0, 1: 1})  # it loads the rows; what is in them is behind it
    assert await anext(seen) == ("heartbeat", None, {0: 0, 1: 1})
    await feed.stop()
    rest = [kind async for kind, _, _ in seen]  # the watcher reconnects, from memory elsewhere or afresh
    assert rest in ([], ["heartbeat"])


async def test_a_feed_of_a_topic_that_does_not_exist_fails_the_watch():
    feed = ChangelogFeed("missing", lambda name: Changelog("t", {}, name), memory=10, linger_s=0)
    with pytest.raises(RuntimeError, match="missing"):
        await anext(stream(feed, None, heartbeat_s=1))
