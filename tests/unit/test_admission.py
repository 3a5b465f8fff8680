"""The door new orders come in by — its pace following how far behind the contexts run, each caller's turn — and
the watch on how far behind they run: no Kafka, no clock of the machine's."""
import pytest

from agents.order.admission import Busy, Door, DoorSettings
from agents.runtime.pipeline import PipelineWatch
from tests.fake_clock import Clock


def door(**settings) -> tuple[Door, Clock]:
    clock = Clock()
    return Door(DoorSettings(**{"shed_from_s": 1.0, "shed_all_s": 3.0, "wait_s": 1.0, "initial_per_s": 100.0,
                                **settings}), clock), clock


def take(door: Door, clock: Clock, per_s: float, seconds: float) -> list[float]:
    """Callers arriving at `per_s` for `seconds`: the wait each was given (refused callers left out)."""
    waits = []
    for _ in range(int(per_s * seconds)):
        try:
            waits.append(door.turn())
        except Busy:
            pass
        clock.now += 1 / per_s
    return waits


def test_a_door_lets_callers_in_first_come_first_served():
    door_, clock = door(burst_s=0.05)
    waits = [door_.turn() for _ in range(10)]  # ten at one moment, at 100 a second
    assert waits[:6] == pytest.approx([0.0] * 6)  # a burst's worth at once
    assert waits[6:] == pytest.approx([0.01, 0.02, 0.03, 0.04])


def test_a_caller_whose_turn_would_come_later_than_it_may_wait_is_refused_at_once_with_when_to_retry():
    door_, clock = door(initial_per_s=10.0, wait_s=1.0, burst_s=0.0)
    waits = [door_.turn() for _ in range(11)]
    assert waits[-1] == pytest.approx(1.0)
    with pytest.raises(Busy) as refused:
        door_.turn()
    assert refused.value.retry_after == 2 and "more than the 1s an order may wait" in str(refused.value)
    clock.now += 0.5  # half a second later, five turns are free again
    assert door_.turn() == pytest.approx(0.6)


def test_while_the_contexts_keep_up_only_a_pace_in_use_grows():
    door_, clock = door()
    take(door_, clock, 90, 0.25)  # 90 a second against 100: in use
    door_.heard(0.2)
    assert door_.rate == pytest.approx(110.0)  # by its square root, 10
    take(door_, clock, 20, 0.25)
    door_.heard(0.2)
    assert door_.rate == pytest.approx(110.0)


def test_falling_behind_slows_the_door_in_proportion():
    door_, clock = door(initial_per_s=190.0)
    take(door_, clock, 180, 0.25)
    door_.heard(1.1)  # past the mark, and further behind than before: what was taken, in proportion
    assert door_.rate == pytest.approx(180.0 / 1.1, rel=0.03)
    pace = door_.rate
    take(door_, clock, 400, 0.25)  # taken at its pace
    door_.heard(2.9)  # far behind: a fifth less, no more in one reading (deeper cuts swing it)
    assert door_.rate == pytest.approx(pace * 0.8)
    pace = door_.rate
    take(door_, clock, 400, 0.25)
    door_.heard(1.5)  # still behind, but catching up: it holds
    assert door_.rate == pace


def test_placing_a_second_slower_than_usual_slows_the_pace_as_contexts_a_second_behind_would():
    door_, clock = door(initial_per_s=400.0)
    for _ in range(4):
        take(door_, clock, 300, 0.25)
        for _ in range(20):
            door_.placed(0.02)  # the edge places an order in 20 ms
        door_.heard(0.1)
    assert door_.usual_intake_s == pytest.approx(0.02)
    grown = door_.rate
    take(door_, clock, 1000, 0.25)
    for _ in range(20):
        door_.placed(1.6)  # the edge behind the door queues: its orders 1.58 s late
    door_.heard(0.1)
    assert door_.late_s == pytest.approx(4 * 1.58)  # weighed: placing queues long before the topics do
    assert door_.rate == pytest.approx(0.8 * grown, rel=0.05)  # what it took, a fifth less
    slowed = door_.rate
    take(door_, clock, 1000, 0.25)
    for _ in range(20):
        door_.placed(1.3)  # still late, but less: it holds
    door_.heard(0.1)
    assert door_.rate == slowed
    take(door_, clock, 1000, 0.25)
    for _ in range(20):
        door_.placed(0.02)
    door_.heard(0.1)
    assert door_.rate > slowed
    assert door_.usual_intake_s == pytest.approx(0.02)  # what queued taught it nothing


def test_past_the_second_mark_the_door_closes_until_the_contexts_catch_up():
    door_, clock = door()
    take(door_, clock, 100, 0.25)
    door_.heard(1.5)
    pace = door_.rate
    door_.heard(3.5)
    with pytest.raises(Busy) as refused:
        door_.turn()
    assert refused.value.retry_after == 4 and "orders take 3.5s longer than usual" in str(refused.value)
    clock.now += 5
    door_.heard(4.0)  # nothing taken meanwhile says nothing of the pace
    door_.heard(0.3)
    assert door_.turn() == 0.0 and door_.rate == pace


def test_a_door_that_took_nothing_lets_a_lone_caller_in():
    door_, clock = door()
    clock.now += 1
    door_.heard(2.5)
    assert door_.rate == pytest.approx(100.0 * 0.8)  # a fifth: not down to what it took, nothing
    assert door_.turn() == 0.0


def test_held_at_a_steady_overload_the_pace_settles_near_what_the_contexts_see_through():
    """A fluid model of bread behind the door: the contexts see 400 orders through a second; the delay is the
    backlog over that. Offered 3× as much, the pace the door takes settles near 400 a second and the delay near
    the first mark, without swinging between all and none."""
    door_, clock = door()
    capacity, backlog, paces = 400.0, 0.0, []
    for reading in range(240):  # a minute, heard four times a second
        taken = len(take(door_, clock, 3 * capacity, 0.25))
        backlog = max(0.0, backlog + taken - capacity * 0.25)
        door_.heard(backlog / capacity)
        if reading >= 80:
            paces.append(taken * 4)
    mean = sum(paces) / len(paces)
    spread = (sum((p - mean) ** 2 for p in paces) / len(paces)) ** 0.5
    assert 0.9 * capacity < mean < 1.1 * capacity and spread / mean < 0.25
    assert backlog / capacity < 3.0


@pytest.mark.parametrize("wrong", [dict(shed_from_s=3.0), dict(shed_from_s=0), dict(wait_s=-1),
                                   dict(minimum_per_s=200.0), dict(initial_per_s=0)])
def test_settings_that_make_no_sense_are_refused(wrong):
    with pytest.raises(ValueError):
        door(**wrong)


def test_the_watch_hears_the_longest_delay_of_the_contexts_still_talking():
    clock = Clock()
    watch = PipelineWatch(http=None, urls={}, every_s=0.25, clock=clock)
    assert watch.delay() == 0.0
    watch.heard("bakery", 0.3)
    watch.heard("mypage", 1.7)
    assert watch.delay() == 1.7
    clock.now += 0.5
    watch.heard("bakery", 0.2)              # Mypage said nothing since: its last word still counts
    assert watch.delay() == 1.7
    clock.now += 0.6                        # four polls without a word from Mypage: left out
    assert watch.delay() == 0.2
