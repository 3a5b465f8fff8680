"""Every change bread makes to Faust's and aiokafka's private parts, in one place: each closes a hole the crash
test found or takes out per-message work bread does not need, and each is tested directly
(tests/unit/test_faust_patches.py). No other module touches a private name of Faust's or aiokafka's.

They were verified against the versions below only: `check_versions` refuses any other, so an upgrade fails here,
loudly, instead of losing messages quietly. After an upgrade, read each patch against the new source, run
tests/unit/test_faust_patches.py and the crash test (tests/e2e/test_crash.py) three times, then add the version.
"""
from __future__ import annotations

import asyncio
import logging
import time
import types
import weakref
from importlib.metadata import version
from typing import Any, Awaitable, Callable, Coroutine, Generator

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from faust.sensors.monitor import Monitor
from mode.services import WaitResults

log = logging.getLogger(__name__)

VERIFIED = {"faust-streaming": {"0.15.3"}, "aiokafka": {"0.14.0"}, "mode-streaming": {"0.7.1"}}
REREAD_AFTER_S = 30.0  # a partition still missing messages this long after reading again reads again


class UnverifiedVersion(SystemExit):
    """A library version the patches were not verified against."""


def check_versions(installed: Callable[[str], str] = version) -> None:
    """Refuse to start on a version of Faust, mode or aiokafka the patches were not verified against."""
    wrong = [f"{name} {installed(name)} (verified: {', '.join(sorted(good))})" for name, good in VERIFIED.items()
             if installed(name) not in good]
    if wrong:
        raise UnverifiedVersion(
            "bread patches private parts of these libraries and was not verified against the versions installed: "
            f"{'; '.join(wrong)}. Install the verified versions (pip install -e .), or verify the patches in "
            "agents/runtime/faust_patches.py against the new ones: tests/unit/test_faust_patches.py and the crash "
            "test three times, then add the version to VERIFIED.")


async def _nothing_held() -> None:
    pass


def flush_before_commit(producer: Any, expect_acknowledgement: Callable[[asyncio.Future], None],
                        unacknowledged: set[asyncio.Future],
                        before: Callable[[], Awaitable[None]] = _nothing_held) -> None:
    """The hole: Faust's flush before it commits consumer offsets gives up on its buffer of sends after 0.1 s
    without progress (a broker that just came back) and does not look at sends that failed, so it can commit an
    input's offset while that input's table change or event never reached the broker, and a crash then loses them
    for good. Closed: its buffer's sends are expected too, and the flush waits for every send made so far (after
    `before`, which sends what is held back) and raises if one failed, which stops the commit: the worker fails,
    starts again and handles those inputs again."""
    buffer_put, faust_flush = producer.buffer.put, producer.flush

    def put(future: asyncio.Future) -> None:
        expect_acknowledgement(future)
        buffer_put(future)

    async def flush() -> None:
        await before()
        await asyncio.gather(*list(unacknowledged))
        await faust_flush()

    producer.buffer.put, producer.flush = put, flush


def idempotent_producer(producer: Any) -> None:
    """The hole: Faust makes its producer idempotent only for exactly-once, so under at-least-once a send the
    client retries after a lost answer may be written twice, and behind a retried batch a later one may land
    first: a table's changelog could then end with an older row. Closed: acks=all and idempotent, as every
    producer of bread's."""
    producer._settings_extra = lambda: {"acks": "all", "enable_idempotence": True}


async def learn_partitions(producer: Any, topic: str) -> None:
    """Have Faust's producer fetch a topic's metadata: Faust's router needs a table's changelog partitions to find
    a key's owner, and knows nothing of a changelog before it first sent to it."""
    await producer._ensure_producer().partitions_for(topic)


def commit_only_what_was_handled(consumer: Any, own_topics: set[str]) -> None:
    """The hole: Faust drops records it fetched when its flow stops or a partition is paused mid-batch
    (rebalances, table recovery, a broker coming back), commits the first run of handled offsets even when it
    begins past the last commit, and commits over offsets its fetches skipped, taking them for transaction
    markers. Only producers from outside bread write markers: on bread's own topics a skipped offset is a message
    missed, and committing past it loses it for good. Closed: on those topics the partition's commit waits, and
    the worker seeks back to its last commits and reads from there again (what it handled already it handles
    again, which outputs-follow-from-state makes harmless)."""
    faust_new_offset, faust_add_gap = consumer._new_offset, consumer._add_gap
    sought: dict[Any, tuple[int, float]] = {}  # partition -> (the commit sought back to, when)
    seeking: set[asyncio.Task] = set()

    def read_again(tp: Any, first: int, next_handled: int) -> None:
        committed = consumer._committed_offset[tp]
        if committed is not None and sought.get(tp, (None, 0.0))[0] == committed \
                and time.monotonic() - sought[tp][1] < REREAD_AFTER_S:
            return  # reading again already
        sought[tp] = (committed, time.monotonic())
        log.warning("%s: offsets from %s were not handled before %s; reading again from the last commit",
                    tp, first, next_handled)
        seeking.add(seek := asyncio.get_running_loop().create_task(consumer.perform_seek()))
        seek.add_done_callback(seeking.discard)

    def new_offset(tp: Any) -> int | None:
        handled, committed = consumer._acked[tp], consumer._committed_offset[tp]
        if tp.topic in own_topics and handled and committed is not None and min(handled) > committed:
            read_again(tp, committed, min(handled))
            return None
        return faust_new_offset(tp)

    async def add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
        if tp.topic in own_topics:
            read_again(tp, offset_from, offset_to)
        else:
            await faust_add_gap(tp, offset_from, offset_to)

    consumer._new_offset, consumer._add_gap = new_offset, add_gap


def long_poll_fetches(app: faust.App, min_bytes: int, wait_ms: int) -> None:
    """The cost: Faust's consumer asks for fetches that the broker answers after half a second at most, empty
    at idle; with the pace (`pace_fetches`) a fetch can wait longer for the first message. Faust has no setting
    for it: the consumer it creates returns a fetch once `min_bytes` came, or after `wait_ms`."""
    thread = app.consumer._thread
    create = thread._create_worker_consumer

    def long_polling(transport: Any) -> AIOKafkaConsumer:
        consumer = create(transport)
        consumer._fetch_min_bytes = min_bytes
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    thread._create_worker_consumer = long_polling


def pace_fetches(interval_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """The cost: a consumer asks the broker for more as soon as it has handled what it got, so under load each
    consumer sends a fetch for every message or two, and at idle one every fetch.max.wait.ms: the broker's CPU
    goes to fetches. Paced, every consumer of this process sends a node a fetch at most every `interval_s`: a
    quiet consumer's fetch waits at the broker (a long poll: fetch.max.wait.ms) and returns the moment a message
    comes, a busy one's returns at once with what came in since the last, and no hop waits more than
    `interval_s`. aiokafka has no setting for it."""
    fetch = Fetcher._proc_fetch_request
    if getattr(fetch, "paced_s", None) == interval_s and clock is time.monotonic:
        return
    fetch = getattr(fetch, "unpaced", fetch)
    last_sent: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # fetcher -> {node: when it last asked}

    async def paced(fetcher: Fetcher, assignment: Any, node_id: int, request: Any) -> bool:
        sent = last_sent.setdefault(fetcher, {})
        wait = sent.get(node_id, float("-inf")) + interval_s - clock()
        if wait > 0:
            try:
                await sleep(wait)  # the pace itself
            except asyncio.CancelledError:
                return False  # closed, or the partition was taken away: as aiokafka's own fetch answers then
        sent[node_id] = clock()
        return await fetch(fetcher, assignment, node_id, request)

    paced.paced_s, paced.unpaced = interval_s, fetch  # type: ignore[attr-defined]
    Fetcher._proc_fetch_request = paced


def drain_without_tasks(consumer: Any) -> None:
    """The cost: Faust hands each fetched message to its streams through `wait_first(callback(message),
    suspend_flow.wait())`, four tasks per message, so that a flow suspended by a rebalance cuts a waiting callback
    short. The callback almost never waits (only on a full stream buffer or a stopped flow): it runs at once here,
    and only one that does wait is raced against the suspension as Faust does."""
    faust_wait_first = consumer.wait_first

    async def wait_first(*coros: Any, timeout: float | None = None) -> WaitResults:
        suspend_flow = consumer.suspend_flow
        if len(coros) == 2 and _is_wait_of(coros[1], suspend_flow) and not suspend_flow.is_set():
            callback, suspended = coros
            try:
                waiting = callback.send(None)
            except StopIteration as done:
                suspended.close()
                return WaitResults([callback], [done.value], False)
            return await faust_wait_first(_go_on(callback, waiting), suspended, timeout=timeout)
        return await faust_wait_first(*coros, timeout=timeout)

    consumer.wait_first = wait_first


def _is_wait_of(coroutine: Any, event: Any) -> bool:
    """Whether `coroutine` is `event.wait()`, not yet begun."""
    frame = getattr(coroutine, "cr_frame", None)
    return frame is not None and coroutine.cr_code is type(event).wait.__code__ and frame.f_locals.get("self") is event


async def _go_on(coroutine: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """The rest of a coroutine begun by hand and now waiting on `waiting`, driven as a task drives one."""
    return await _driven(coroutine, waiting)


@types.coroutine
def _driven(coroutine: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, None, Any]:
    """What it waits on is waited on, a cancellation is passed into it, and its result is the result."""
    while True:
        try:
            yield waiting
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - a cancellation (or any throw) belongs to the coroutine
            try:
                waiting = coroutine.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            waiting = coroutine.send(None)
        except StopIteration as done:
            return done.value


class QuietMonitor(Monitor):
    """Faust's monitor without its bookkeeping for every message, event, send and table access (counters, labels
    and times bread does not read: it counts what it needs itself, agents/runtime/metrics.py). It still notes when
    a partition's stream last took an event, which Faust's warnings about slow streams read."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = time.monotonic()

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: Any, key: Any) -> None:
        pass

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> None:
        pass

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        pass

