"""Each patch of Faust's and aiokafka's private parts (agents/runtime/faust_patches.py), against stand-ins for
what it patches: the hole it closes stays closed, the work it takes out stays out."""
import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP as FaustTP
from mode import Service
from mode.utils.locks import Event

from agents.runtime import faust_patches


def test_a_library_version_the_patches_were_not_verified_against_stops_the_start_naming_it():
    installed = {"faust-streaming": "0.16.0", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}
    with pytest.raises(faust_patches.UnverifiedVersion) as refused:
        faust_patches.check_versions(installed.__getitem__)
    assert "faust-streaming 0.16.0 (verified: 0.15.3)" in str(refused.value)
    assert "test_faust_patches.py" in str(refused.value)


def test_the_installed_versions_are_the_verified_ones():
    faust_patches.check_versions()


class Drain(Service):
    """Faust's consumer as its drain loop uses it: `wait_first(callback(message), suspend_flow.wait())`."""

    def __post_init__(self) -> None:
        self.suspend_flow = Event()
        self.slow_path_taken = 0

    async def wait_first(self, *coros, timeout=None):  # the original, counting its calls
        self.slow_path_taken += 1
        return await super().wait_first(*coros, timeout=timeout)


@pytest.fixture
def drain():
    consumer = Drain()
    faust_patches.drain_without_tasks(consumer)
    return consumer


async def test_a_message_whose_callback_need_not_wait_is_handed_on_without_a_task(drain):
    async def callback():
        return "delivered"
    tasks_before = len(asyncio.all_tasks())
    done = await drain.wait_first(callback(), drain.suspend_flow.wait())
    assert (done.done and done.results, done.stopped) == (["delivered"], False)
    assert drain.slow_path_taken == 0 and len(asyncio.all_tasks()) == tasks_before


async def test_a_callback_that_waits_finishes_once_the_suspension_allows(drain):
    room, began = asyncio.get_running_loop().create_future(), asyncio.Event()

    async def callback():
        began.set()
        return await room  # a full stream buffer, say
    waiting = asyncio.ensure_future(drain.wait_first(callback(), drain.suspend_flow.wait()))
    await asyncio.wait_for(began.wait(), 2)
    assert not waiting.done() and drain.slow_path_taken == 1
    room.set_result("delivered")
    assert (await waiting).results == ["delivered"]


async def test_a_waiting_callback_is_cut_short_when_the_flow_is_suspended_as_faust_does(drain):
    room, began = asyncio.get_running_loop().create_future(), asyncio.Event()
    finished = []

    async def callback():
        began.set()
        finished.append(await room)
    waiting = asyncio.ensure_future(drain.wait_first(callback(), drain.suspend_flow.wait()))
    await asyncio.wait_for(began.wait(), 2)
    drain.suspend_flow.set()  # a rebalance begins
    done = await waiting
    assert done.results == [True] and finished == []  # the suspension won; the callback was cancelled
    assert room.cancelled()


async def test_a_suspended_flow_takes_faust_s_own_way(drain):
    drain.suspend_flow.set()

    async def callback():
        return "delivered"
    await drain.wait_first(callback(), drain.suspend_flow.wait())
    assert drain.slow_path_taken == 1


async def test_other_waits_take_faust_s_own_way(drain):
    other = Event()
    other.set()
    await drain.wait_first(other.wait())
    assert drain.slow_path_taken == 1


class Producer:
    """Faust's producer as the commit sees it: a buffer of sends, and a flush."""

    def __init__(self) -> None:
        self.buffered, self.flushed = [], 0
        self.buffer = SimpleNamespace(put=self.buffered.append)

    async def flush(self) -> None:
        self.flushed += 1


async def test_the_flush_before_a_commit_waits_for_every_send():
    producer, unacknowledged = Producer(), set()

    def expect(future):
        unacknowledged.add(future)
        future.add_done_callback(unacknowledged.discard)
    held_back, sent_held = [], asyncio.Event()

    async def send_held():
        held_back.append("sent")
        sent_held.set()
    faust_patches.flush_before_commit(producer, expect, unacknowledged, before=send_held)
    loop = asyncio.get_running_loop()
    buffered, sent = loop.create_future(), loop.create_future()
    producer.buffer.put(buffered)  # a send through Faust's buffer
    expect(sent)                   # a send of bread's own
    flushing = asyncio.ensure_future(producer.flush())
    await asyncio.wait_for(sent_held.wait(), 2)
    assert held_back == ["sent"] and not flushing.done()  # Faust's gave up after 0.1 s; this one waits
    buffered.set_result(None)
    sent.set_exception(ConnectionError("the broker went away"))
    with pytest.raises(ConnectionError):
        await flushing  # the commit stops: the inputs are handled again after the restart
    assert producer.buffered == [buffered]


TP = FaustTP(topic="bread.orders", partition=0)
OTHERS = FaustTP(topic="bread.order-requests", partition=0)


class Committing:
    """Faust's consumer as its commit sees a partition: offsets handled, the last commit, and a seek back."""

    def __init__(self, tp, handled, committed) -> None:
        self._acked = {tp: handled}
        self._committed_offset = {tp: committed}
        self.seeks = 0
        self.sought = asyncio.Event()

    def _new_offset(self, tp):
        return max(self._acked[tp]) + 1

    async def _add_gap(self, tp, offset_from, offset_to):
        self.gap = (offset_from, offset_to)

    async def perform_seek(self):
        self.seeks += 1
        self.sought.set()




async def test_a_partition_whose_handled_offsets_begin_past_its_last_commit_is_read_again_not_committed():
    consumer = Committing(TP, handled=[13, 14], committed=10)  # 10, 11 and 12 were dropped by Faust, not handled
    faust_patches.commit_only_what_was_handled(consumer, own_topics={"bread.orders"})
    assert consumer._new_offset(TP) is None
    await asyncio.wait_for(consumer.sought.wait(), 2)
    assert consumer.seeks == 1
    assert consumer._new_offset(TP) is None and consumer.seeks == 1  # reading again already: one seek


async def test_skipped_offsets_on_bread_s_topics_are_read_again():
    consumer = Committing(TP, handled=[11], committed=10)
    faust_patches.commit_only_what_was_handled(consumer, own_topics={"bread.orders"})
    consumer._committed_offset[OTHERS] = 10
    await consumer._add_gap(OTHERS, 3, 5)  # a producer from outside bread wrote transaction markers
    assert consumer.gap == (3, 5) and consumer.seeks == 0
    await consumer._add_gap(TP, 3, 5)
    await asyncio.wait_for(consumer.sought.wait(), 2)
    assert consumer.seeks == 1


def test_faust_s_consumer_long_polls():
    made = SimpleNamespace()
    thread = SimpleNamespace(_create_worker_consumer=lambda transport: made)
    faust_patches.long_poll_fetches(SimpleNamespace(consumer=SimpleNamespace(_thread=thread)), 1, 1000)
    assert thread._create_worker_consumer("transport") is made
    assert (made._fetch_min_bytes, made._fetch_max_wait_ms) == (1, 1000)


async def test_a_consumer_asks_a_busy_node_again_no_sooner_than_the_pace():
    from aiokafka.consumer.fetcher import Fetcher
    original, now, waited, asked = Fetcher._proc_fetch_request, [100.0], [], []

    async def fetch(self, assignment, node_id, request):  # aiokafka's: sends the fetch, handles the answer
        asked.append((node_id, now[0]))
        return True

    async def sleep(seconds):
        waited.append(round(seconds, 3))
        now[0] += seconds
    Fetcher._proc_fetch_request = fetch
    try:
        faust_patches.pace_fetches(0.1, clock=lambda: now[0], sleep=sleep)
        fetcher = object.__new__(Fetcher)
        await Fetcher._proc_fetch_request(fetcher, None, 1, None)
        now[0] += 0.02  # a busy consumer: the answer came at once, and it handled it in 20 ms
        await Fetcher._proc_fetch_request(fetcher, None, 1, None)
        assert waited == [0.08] and asked[-1] == (1, 100.1)
        now[0] += 1.0   # a quiet one: its fetch waited at the broker for a second
        await Fetcher._proc_fetch_request(fetcher, None, 1, None)
        await Fetcher._proc_fetch_request(fetcher, None, 2, None)  # another node keeps its own pace
        assert waited == [0.08] and [node for node, _ in asked] == [1, 1, 1, 2]
    finally:
        Fetcher._proc_fetch_request = original


async def test_a_fetch_waiting_its_pace_when_the_consumer_closes_ends_as_aiokafka_s_own_fetch_does():
    from aiokafka.consumer.fetcher import Fetcher
    original = Fetcher._proc_fetch_request

    async def fetch(self, assignment, node_id, request):
        return True
    Fetcher._proc_fetch_request = fetch
    try:
        waiting = asyncio.Event()

        async def pace(seconds: float) -> None:
            waiting.set()
            await asyncio.sleep(seconds)  # ok-sleep: the pace under test, cancelled below
        faust_patches.pace_fetches(60.0, sleep=pace)
        fetcher = object.__new__(Fetcher)
        await Fetcher._proc_fetch_request(fetcher, None, 1, None)
        pacing = asyncio.ensure_future(Fetcher._proc_fetch_request(fetcher, None, 1, None))
        await waiting.wait()
        pacing.cancel()  # the consumer stops: aiokafka cancels its fetches, then awaits them
        assert await pacing is False
    finally:
        Fetcher._proc_fetch_request = original


def test_the_quiet_monitor_keeps_only_when_each_partition_last_took_an_event():
    monitor = faust_patches.QuietMonitor()
    monitor.on_message_in(TP, 3, object())
    monitor.on_stream_event_in(TP, 3, object(), object())
    assert TP in monitor.stream_inbound_time
    assert monitor.messages_received_total == monitor.events_total == 0
