"""The order edge's admission rule and its watch on how far behind the contexts run: no Kafka, no clock of the
machine's."""
import pytest

from agents.order.admission import Admission, Busy, check_admitted
from agents.runtime.pipeline import PipelineWatch

RULE = Admission(shed_from_s=1.0, shed_all_s=3.0)


@pytest.mark.parametrize("delay, share", [(0.0, 0.0), (1.0, 0.0), (1.5, 0.25), (2.0, 0.5), (3.0, 1.0), (60, 1.0)])
def test_the_share_refused_grows_in_step_with_the_delay_between_the_two_marks(delay, share):
    assert RULE.share_refused(delay) == pytest.approx(share)


def test_an_order_is_refused_when_its_draw_falls_in_the_share_refused():
    check_admitted(RULE, 2.0, draw=0.5)      # half are refused: draws from 0.5 up are taken
    with pytest.raises(Busy) as refused:
        check_admitted(RULE, 2.0, draw=0.49)
    assert refused.value.retry_after == 2 and "try again" in str(refused.value)


def test_below_the_first_mark_every_order_is_taken_and_past_the_second_none():
    for draw in (0.0, 0.5, 0.999):
        check_admitted(RULE, 0.9, draw)
        with pytest.raises(Busy):
            check_admitted(RULE, 3.2, draw)


def test_retry_after_is_whole_seconds_and_at_least_one():
    with pytest.raises(Busy) as refused:
        check_admitted(Admission(0.1, 0.2), 0.3, draw=0.0)
    assert refused.value.retry_after == 1


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_takes_the_longest_delay_heard_lately_and_forgets_a_silent_context():
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
