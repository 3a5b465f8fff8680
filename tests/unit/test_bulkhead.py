"""The bulkhead in front of pay: its adaptive limit (it follows how long windows of calls take, and how late this
process wakes meanwhile), callers waiting their turn first come first served for no longer than they may, and —
through the pay client — a turn that did not come in time is no failure of pay's for the breaker, nor is a timeout
while this process stalled. Time is a fake clock where the limit and the breaker learn from it; waits are real but
short."""
import asyncio

import pytest

from agents.breaker import BreakerSettings, BreakerState, CircuitBreaker, CircuitOpen
from agents.bulkhead import AdaptiveLimit, Bulkhead, BulkheadFull, LimitSettings
from agents.order.intake import Fallback, PaymentDeclined, PaymentUnavailable
from agents.order.menu import OrderRequest
from agents.runtime.pay_client import PayClient
from agents.runtime.stalls import Stalls
from tests.fake_clock import Clock


def limit_used_to(took_s: float, windows: int = 50, **settings) -> AdaptiveLimit:
    limit = AdaptiveLimit(LimitSettings(**{"initial": 20, "minimum": 2, "maximum": 200, "window_calls": 10,
                                           **settings}))
    calls(limit, took_s, 0, windows)  # none in flight: it learns the usual time and keeps the limit
    return limit


def calls(limit: AdaptiveLimit, took_s: float, in_flight: int | None, windows: int, late_s: float = 0.0) -> None:
    """`windows` windows of calls that each took `took_s`, with `in_flight` out (None: as many as the limit), and
    this process's loop `late_s` late meanwhile."""
    for _ in range(windows * limit.settings.window_calls):
        limit.took(took_s, limit.value if in_flight is None else in_flight, late_s)


def test_while_calls_take_their_usual_time_a_limit_in_use_grows_by_its_square_root_up_to_the_maximum():
    limit = limit_used_to(0.5, maximum=40)
    assert (limit.value, limit.usual_s) == (20, pytest.approx(0.5))
    for _ in range(9):
        limit.took(0.5, 20)
    assert limit.value == 20  # judged by whole windows only
    limit.took(0.5, 20)
    assert limit.value == int(20 + 0.2 * 20 ** 0.5)  # smoothed: a fifth of the step
    calls(limit, 1.9, None, 200)  # within the tolerance (a busy dependency is slower): no sign of queueing
    assert limit.value == 40


def test_a_limit_not_in_use_neither_grows_nor_shrinks():
    limit = limit_used_to(0.5)
    calls(limit, 0.5, 9, 50)  # under half the limit
    calls(limit, 5.0, 9, 5, late_s=1.0)
    assert limit.value == 20


def test_the_spread_of_single_calls_is_no_sign_of_queueing():
    limit = limit_used_to(0.51)
    for _ in range(50):
        for took in (0.45, 0.61, 0.42, 0.55, 0.61, 0.40, 0.61, 0.50, 0.47, 0.61):  # the seed's 400-620 ms, timeouts
            limit.took(took, 20)
    assert limit.value > 20


def test_as_windows_of_calls_take_longer_than_usual_the_limit_shrinks_to_what_would_take_the_usual_time():
    limit = limit_used_to(0.1)
    calls(limit, 0.8, None, 3)  # twice the tolerance: half as many (the gradient's least), and a queue's worth more
    assert 15 <= limit.value < 20
    calls(limit, 0.8, None, 40)
    assert limit.value <= 12  # on its way to the four where half of it and its square root make it
    assert limit.usual_s < 0.2  # what queued taught "usual" little


def test_a_machine_so_busy_that_this_process_wakes_late_shrinks_the_limit_though_calls_take_their_usual_time():
    limit = limit_used_to(0.5)
    calls(limit, 0.5, None, 5, late_s=0.04)  # late, but less than a tenth of the call: the machine keeps up
    assert limit.value > 20
    busy = limit_used_to(0.5)
    calls(busy, 0.5, None, 5, late_s=0.08)
    assert busy.value == int(20 * 0.96 ** 5)  # a fifth fewer would do, smoothed


def test_only_stalls_that_grow_with_fewer_calls_shrink_the_limit():
    limit = limit_used_to(0.5)
    calls(limit, 0.5, None, 1, late_s=0.2)
    shrunk = limit.value
    assert shrunk < 20
    calls(limit, 0.5, None, 1, late_s=0.1)  # still stalled, but less with fewer calls: hold, and do not grow
    assert limit.value == shrunk
    for late_s in (0.09, 0.08, 0.09, 0.07) * 5:  # stalls up and down while the limit falls: not the calls' doing
        calls(limit, 0.5, None, 1, late_s=late_s)
    assert limit.value >= int(shrunk * 0.96 ** 10)  # a fifth of a fifth fewer at the ten windows that stalled more


def test_the_usual_time_follows_the_dependency_back_once_it_is_quick_again():
    limit = limit_used_to(2.0)
    calls(limit, 0.1, 0, 20)
    assert limit.usual_s < 1.0  # not the dozens of windows an average alone would take


@pytest.mark.parametrize("wrong", [dict(initial=1, minimum=2), dict(initial=300), dict(tolerance=0.9),
                                   dict(smoothing=0), dict(smoothing=1.5), dict(window_calls=0),
                                   dict(usual_windows=0), dict(stalled_s=0), dict(stalled_share=0)])
def test_limits_that_make_no_sense_are_refused(wrong):
    with pytest.raises(ValueError):
        LimitSettings(**wrong)


class Pay:
    """A stand-in dependency: each call waits until the test lets it answer (or fail)."""

    def __init__(self) -> None:
        self.calls: list[asyncio.Future] = []

    async def call(self) -> str:
        answer = asyncio.get_running_loop().create_future()
        self.calls.append(answer)
        return await answer

    async def started(self, count: int) -> None:
        while len(self.calls) < count:
            await asyncio.sleep(0)  # ok-sleep: yields to the callers being let in


def bulkhead(initial: int = 2, waiting: int = 10) -> Bulkhead:
    return Bulkhead("pay-test", AdaptiveLimit(LimitSettings(initial=initial, minimum=1, maximum=initial)), waiting)


async def test_calls_beyond_the_limit_wait_their_turn_first_come_first_served():
    pay, calls = Pay(), bulkhead(initial=2)
    callers = [asyncio.create_task(calls.call(pay.call, wait_s=5)) for _ in range(4)]
    await pay.started(2)
    await asyncio.sleep(0.01)  # ok-sleep: time for a third call to start, were the limit not kept
    assert len(pay.calls) == 2 and calls.in_flight == 2
    pay.calls[0].set_result("first")
    await pay.started(3)  # the third caller, not the fourth, got the turn
    pay.calls[1].set_result("second")
    pay.calls[2].set_result("third")
    await pay.started(4)
    pay.calls[3].set_result("fourth")
    assert await asyncio.gather(*callers) == ["first", "second", "third", "fourth"]
    assert calls.in_flight == 0


async def test_a_caller_whose_turn_does_not_come_in_time_is_refused_without_a_call():
    pay, calls = Pay(), bulkhead(initial=1)
    first = asyncio.create_task(calls.call(pay.call, wait_s=5))
    await pay.started(1)
    with pytest.raises(BulkheadFull, match="no turn within 0.05s"):
        await calls.call(pay.call, wait_s=0.05)
    assert len(pay.calls) == 1
    pay.calls[0].set_result("done")
    assert await first == "done"
    assert await asyncio.wait_for(calls.call(lambda: asyncio.sleep(0, "next"), wait_s=1), 1) \
        == "next"  # the refused caller left no slot taken


async def test_with_the_queue_full_a_caller_is_refused_at_once():
    pay, calls = Pay(), bulkhead(initial=1, waiting=1)
    running = asyncio.create_task(calls.call(pay.call, wait_s=5))
    waiting = asyncio.create_task(calls.call(pay.call, wait_s=5))
    await pay.started(1)
    await asyncio.sleep(0)  # ok-sleep: lets the second caller queue
    with pytest.raises(BulkheadFull, match="no room to wait"):
        await calls.call(pay.call, wait_s=5)
    pay.calls[0].set_result(1)
    await pay.started(2)
    pay.calls[1].set_result(2)
    assert (await running, await waiting) == (1, 2)


async def test_a_waiting_caller_that_is_cancelled_gives_its_place_up():
    pay, calls = Pay(), bulkhead(initial=1)
    running = asyncio.create_task(calls.call(pay.call, wait_s=5))
    await pay.started(1)
    gone = asyncio.create_task(calls.call(pay.call, wait_s=5))
    await asyncio.sleep(0)  # ok-sleep: lets it queue
    gone.cancel()
    pay.calls[0].set_result("done")  # the turn passes to the cancelled caller as it leaves
    await running
    assert (await asyncio.gather(gone, return_exceptions=True))[0].__class__ is asyncio.CancelledError
    assert calls.in_flight == 0 and len(pay.calls) == 1




def taking(clock: Clock, seconds: float, outcome: BaseException | str = "paid"):
    """A call that takes `seconds` on the fake clock, then answers or raises."""
    async def call():
        clock.now += seconds
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    return call


def timed_bulkhead(clock: Clock, late_s: float = 0.0) -> Bulkhead:
    """A bulkhead judging every call on its own, its limit of two at the maximum (one call uses it): any sign of
    queueing shows."""
    limit = AdaptiveLimit(LimitSettings(initial=2, minimum=1, maximum=2, window_calls=1))
    return Bulkhead("pay-test", limit, 10, clock, late_since=lambda since: late_s)


async def test_the_limit_learns_how_long_each_call_made_took_however_it_ended():
    clock = Clock()
    calls = timed_bulkhead(clock)
    await calls.call(taking(clock, 0.4), wait_s=1)
    assert calls.limit.usual_s == pytest.approx(0.4)
    with pytest.raises(PaymentDeclined):
        await calls.call(taking(clock, 0.4, PaymentDeclined("over the limit")), wait_s=1)
    assert calls.limit.usual_s == pytest.approx(0.4)
    with pytest.raises(PaymentUnavailable):
        await calls.call(taking(clock, 2.0, PaymentUnavailable("pay did not answer within 2s")), wait_s=1)
    assert calls.limit.usual_s > 0.4  # five times slower than usual: learnt, if only a little
    assert calls.in_flight == 0


async def test_what_was_no_call_at_all_teaches_the_limit_nothing():
    clock = Clock()
    calls = timed_bulkhead(clock)
    await calls.call(taking(clock, 0.4), wait_s=1)
    for _ in range(5):
        with pytest.raises(CircuitOpen):
            await calls.call(taking(clock, 0.0, CircuitOpen("the circuit breaker for pay is open", 5.0)), wait_s=1,
                             made=lambda exc: not isinstance(exc, CircuitOpen))
    assert calls.limit.usual_s == pytest.approx(0.4)  # else the calls after the breaker closed would look slow


async def test_the_bulkhead_tells_the_limit_how_late_this_process_was_during_the_call():
    clock = Clock()
    calls = timed_bulkhead(clock, late_s=0.3)
    await calls.call(taking(clock, 0.5), wait_s=1)
    await calls.call(taking(clock, 0.5), wait_s=1)
    assert calls.limit.value < 2


def pay_client(breaker: CircuitBreaker, calls: Bulkhead, charge) -> PayClient:
    client = PayClient(None, "http://pay", 0.61, breaker, Fallback.REJECT, calls, wait_s=0.05, stalls=Stalls("test"))
    client._charge = charge  # pay itself, without HTTP
    return client


async def test_through_the_pay_client_a_turn_not_come_in_time_is_no_failure_of_pays():
    clock, pay = Clock(), Pay()
    breaker = CircuitBreaker("pay-test", BreakerSettings(window=4, minimum_calls=2, open_seconds=5), clock=clock)
    client = pay_client(breaker, bulkhead(initial=1), lambda *_: pay.call())
    order = OrderRequest("cake", 1, 25000)
    first = asyncio.create_task(client.charge(1, order, "c1"))
    await pay.started(1)
    for order_id in (2, 3, 4, 5):
        with pytest.raises(PaymentUnavailable, match="pay is busy") as refused:
            await client.charge(order_id, order, f"c{order_id}")
        assert refused.value.retry_after == 1.0
    assert breaker.state == BreakerState.CLOSED and client.calls.limit.value == 1
    pay.calls[0].set_result({"paymentId": 1})
    assert await first == {"paymentId": 1}


async def test_through_the_pay_client_an_open_breaker_refuses_before_any_wait():
    clock = Clock()
    breaker = CircuitBreaker("pay-test", BreakerSettings(window=2, minimum_calls=2, open_seconds=5), clock=clock)
    made = []

    async def down(*_):
        made.append(1)
        raise PaymentUnavailable("pay is unreachable")
    client = pay_client(breaker, bulkhead(initial=5), down)
    order = OrderRequest("cake", 1, 25000)
    for order_id in (1, 2):
        with pytest.raises(PaymentUnavailable):
            await client.charge(order_id, order, "c")
    assert breaker.state == BreakerState.OPEN
    clock.now += 1
    with pytest.raises(CircuitOpen) as refused:
        await client.charge(3, order, "c")
    assert refused.value.retry_after == pytest.approx(4.0) and len(made) == 2
    clock.now += 4  # the open time is over: a trial goes through
    with pytest.raises(PaymentUnavailable):
        await client.charge(4, order, "c")
    assert len(made) == 3


class SlowHttp:
    """pay's HTTP as the pay client meets it, when pay does not answer in time: the request runs its timeout out
    on the fake clock — while this process's own loop was `stalled_s` late, as its watch noted."""

    def __init__(self, clock: Clock, stalls: Stalls, stalled_s: float) -> None:
        self.clock, self.stalls, self.stalled_s = clock, stalls, stalled_s

    def post(self, url, data, headers, timeout):
        return self

    async def __aenter__(self):
        self.clock.now += 0.61
        self.stalls.noted(self.stalled_s)
        raise asyncio.TimeoutError

    async def __aexit__(self, *exc):
        return False


@pytest.mark.parametrize("stalled_s, ours", [(0.001, False), (0.3, True)])
async def test_a_timeout_while_this_process_stalled_is_not_pays_failure(stalled_s, ours):
    clock = Clock()
    stalls = Stalls("test", clock=clock)
    breaker = CircuitBreaker("pay-test", BreakerSettings(window=2, minimum_calls=2, open_seconds=5), clock=clock)
    client = PayClient(SlowHttp(clock, stalls, stalled_s), "http://pay", 0.61, breaker, Fallback.REJECT,
                       timed_bulkhead(clock), wait_s=0.05, stalls=stalls)
    order = OrderRequest("cake", 1, 25000)
    for order_id in (1, 2):
        with pytest.raises(PaymentUnavailable) as timed_out:
            await client.charge(order_id, order, "c")
        assert timed_out.value.ours is ours and ("stalled 0.30s" in str(timed_out.value)) is ours
    assert breaker.state == (BreakerState.CLOSED if ours else BreakerState.OPEN)
