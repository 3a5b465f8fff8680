"""Lag against what was handled, stall detection, and the saga's duration: no Kafka."""
import pytest
from prometheus_client import REGISTRY

from agents.events import make_event
from agents.order.lifecycle import apply_event, saga_seconds
from agents.runtime.metrics import DELAY_WINDOW_S, Progress


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def lag_sample(context, topic, partition):
    return REGISTRY.get_sample_value("bread_consumer_lag", {"context": context, "topic": topic,
                                                            "partition": str(partition)})


def test_lag_counts_from_the_next_offset_to_handle_not_from_what_was_fetched():
    progress = Progress("probe", clock=Clock())
    assert progress.observe("t", 0, highwater=10, position=4) == 6  # nothing handled yet: from the position
    progress.handled("t", 0, 6)
    assert progress.observe("t", 0, highwater=10, position=10) == 3  # fetched all, handled up to 6
    progress.handled("t", 0, 5)  # an older offset (a redelivery) moves nothing back
    assert progress.next_offset("t", 0) == 7
    assert lag_sample("probe", "t", 0) == 3
    assert progress.observe("t", 1, highwater=-1, position=None) == 0  # an empty partition


def test_only_a_partition_with_lag_that_does_not_move_is_stalled():
    clock = Clock()
    progress = Progress("probe-stall", clock=clock)
    progress.handled("t", 0, 1)
    progress.handled("t", 1, 1)
    progress.observe("t", 0, highwater=9, position=9)
    progress.observe("t", 1, highwater=2, position=2)  # caught up
    clock.now = 30
    assert progress.stalled(after_seconds=20) == ["t[0] 7 behind, no progress for 30s"]
    progress.handled("t", 0, 2)
    assert progress.stalled(after_seconds=20) == []
    progress.forget("t", 0)
    assert lag_sample("probe-stall", "t", 0) is None and lag_sample("probe-stall", "t", 1) == 0


def placed(at):
    event = make_event("OrderPlaced", correlation_id="c", orderId=1, item="cake", qty=1, price=25000)
    return {**event, "occurredAt": at}


def confirmed(at):
    return {**make_event("BakeryConfirmed", correlation_id="c", orderId=1, bakeryId="b"), "occurredAt": at}


def test_the_saga_duration_is_known_once_when_the_order_ends_whatever_arrives_first():
    start, end = "2026-11-26T10:00:00.000+00:00", "2026-11-26T10:00:02.500+00:00"
    order = apply_event(None, placed(start))
    assert saga_seconds(None, order) is None
    ended = apply_event(order, confirmed(end))
    assert saga_seconds(order, ended) == 2.5
    assert saga_seconds(ended, apply_event(ended, confirmed(end))) is None  # a later event: already known
    late_start = apply_event(apply_event(None, confirmed(end)), placed(start))
    assert saga_seconds(apply_event(None, confirmed(end)), late_start) == 2.5


async def test_a_sample_observes_only_the_partitions_held():
    from collections import namedtuple
    TP = namedtuple("TP", "topic partition")
    progress = Progress("probe-sample", clock=Clock())
    highwaters = {TP("t", 0): 5, TP("t", 1): None}  # partition 1 not fetched yet

    async def position(tp):
        return 2
    await progress.sample([TP("t", 0), TP("t", 1)], highwaters.get, position)
    assert lag_sample("probe-sample", "t", 0) == 3 and lag_sample("probe-sample", "t", 1) is None
    await progress.sample([TP("t", 1)], highwaters.get, position)  # a rebalance took partition 0 away
    assert lag_sample("probe-sample", "t", 0) is None


class Clocks:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def wall(self) -> float:
        return self.now


def test_the_delay_is_the_longest_wait_of_the_events_handled_lately():
    clocks = Clocks()
    progress = Progress("bakery", clock=lambda: clocks.now, wall_clock=clocks.wall)
    assert progress.delay() == 0.0
    progress.handled("bread.payments", 0, 1, sent_at=clocks.now - 0.2)
    progress.handled("bread.payments", 0, 2, sent_at=clocks.now - 1.5)  # it had waited behind a backlog
    progress.handled("bread.payments", 1, 7, sent_at=clocks.now - 0.1)
    assert progress.delay() == 1.5
    clocks.now += DELAY_WINDOW_S        # the next window: the last one still counts
    progress.handled("bread.payments", 0, 3, sent_at=clocks.now - 0.3)
    assert progress.delay() == 1.5
    clocks.now += DELAY_WINDOW_S        # and then it no longer does: the window before's longest counts
    assert progress.delay() == pytest.approx(0.3)
    clocks.now += 10.0                  # idle: nothing waits for the context
    assert progress.delay() == 0.0


def test_an_event_sent_by_a_clock_ahead_of_this_one_counts_as_no_delay():
    clocks = Clocks()
    progress = Progress("mypage", clock=lambda: clocks.now, wall_clock=clocks.wall)
    progress.handled("bread.orders", 0, 1, sent_at=clocks.now + 0.5)
    assert progress.delay() == 0.0


def test_a_partition_with_messages_waiting_that_does_not_move_counts_as_far_behind_as_it_stood_still():
    clocks = Clocks()
    progress = Progress("bakery", clock=lambda: clocks.now, wall_clock=clocks.wall)
    progress.handled("bread.payments", 0, 9, sent_at=clocks.now - 0.1)
    clocks.now += 0.5
    progress.observe("bread.payments", 0, highwater=30, position=10)  # 20 waiting
    clocks.now += 4.0                                                  # and nothing handled since
    assert progress.delay() == pytest.approx(4.0)
    progress.handled("bread.payments", 0, 10, sent_at=clocks.now - 4.2)
    assert progress.delay() == pytest.approx(4.2)                      # the event it took had waited longer


def test_a_partition_that_moved_since_its_sample_is_not_standing_still():
    clocks = Clocks()
    progress = Progress("mypage", clock=lambda: clocks.now, wall_clock=clocks.wall)
    progress.observe("bread.orders", 0, highwater=11, position=10)     # one just arrived
    clocks.now += 0.01
    progress.handled("bread.orders", 0, 10, sent_at=clocks.now - 0.02)
    clocks.now += 30.0                                                 # idle since: nothing waits
    assert progress.delay() == 0.0


def test_requests_from_outside_are_behind_apart_from_the_context_s_own_events():
    clocks = Clocks()
    progress = Progress("order", clock=lambda: clocks.now, wall_clock=clocks.wall, outside={"bread.order-requests"})
    progress.handled("bread.orders", 0, 1, sent_at=clocks.now - 0.1)
    progress.handled("bread.order-requests", 2, 40, sent_at=clocks.now - 6.0)  # a partner's burst, queued
    progress.observe("bread.order-requests", 2, highwater=500, position=41)
    assert progress.delay() == pytest.approx(0.1)  # the saga's own events are not held up by the burst
    assert progress.delay(outside=True) == pytest.approx(6.0)
    assert (progress.waiting(), progress.waiting(outside=True)) == (0, 459)
