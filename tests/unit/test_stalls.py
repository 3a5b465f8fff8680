"""The watch on this process's own event loop: how late it woke, and the worst since a moment — what tells a call
that timed out because this process stalled from one pay did not answer in time."""
import asyncio
import time

from agents.runtime.stalls import Stalls
from tests.fake_clock import Clock


def test_the_worst_lateness_since_a_moment_counts_only_wake_ups_noted_from_then_on():
    clock = Clock()
    stalls = Stalls("test", clock=clock)
    stalls.noted(0.5)
    clock.now += 1
    since = clock.now
    stalls.noted(0.01)
    clock.now += 1
    stalls.noted(0.2)
    stalls.noted(0.03)
    assert stalls.worst_since(since) == 0.2
    assert stalls.worst_since(since - 1) == 0.5
    assert stalls.worst_since(clock.now + 1) == 0.0


def test_only_the_last_keep_s_are_kept():
    clock = Clock()
    stalls = Stalls("test", keep_s=10, clock=clock)
    stalls.noted(3.0)
    clock.now += 11
    stalls.noted(0.0)
    assert stalls.worst_since(0) == 0.0


async def test_the_watch_notes_a_loop_kept_busy():
    stalls = Stalls("test", period_s=0.01)
    watching = asyncio.create_task(stalls.watch())
    since = stalls.clock()
    await asyncio.sleep(0)  # ok-sleep: the watch starts its first period
    time.sleep(0.15)  # the loop kept busy: nothing else runs meanwhile
    deadline = time.monotonic() + 5
    while stalls.worst_since(since) == 0.0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # ok-sleep: the poll of a bounded wait for the watch's next wake-up
    watching.cancel()
    assert stalls.worst_since(since) >= 0.1
