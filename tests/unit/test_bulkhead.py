"""The bulkhead in front of pay: its adaptive limit (additive increase, multiplicative decrease), callers
waiting their turn first come first served for no longer than they may, and — through the pay client — a
turn that did not come in time is neither a failure of pay's for the breaker nor a reason to lower the limit.
Time is a fake clock where the breaker needs one; waits are real but short."""
import asyncio

import pytest

from agents.breaker import BreakerSettings, BreakerState, CircuitBreaker, CircuitOpen
from agents.bulkhead import AdaptiveLimit, Bulkhead, BulkheadFull, LimitSettings
from agents.order.intake import Fallback, PaymentDeclined, PaymentUnavailable
from agents.order.menu import OrderRequest
from agents.runtime.pay_client import PayClient


def test_the_limit_grows_by_one_per_call_answered_while_it_was_in_use():
    limit = AdaptiveLimit(LimitSettings(initial=4, minimum=2, maximum=6))
    limit.answered(in_flight=1)  # a quarter of the limit in use: says nothing of more
    assert limit.value == 4
    for _ in range(5):
        limit.answered(in_flight=3)
    assert limit.value == 6  # and no further than the maximum


def test_the_limit_shrinks_by_the_backoff_per_dropped_call_down_to_the_minimum():
    limit = AdaptiveLimit(LimitSettings(initial=20, minimum=2, maximum=50, backoff=0.5))
    limit.dropped()
    assert limit.value == 10
    for _ in range(10):
        limit.dropped()
    assert limit.value == 2


@pytest.mark.parametrize("wrong", [dict(initial=1, minimum=2), dict(initial=300), dict(backoff=1.0),
                                   dict(backoff=0)])
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


def never_drop(_: BaseException) -> bool:
    return False


async def test_calls_beyond_the_limit_wait_their_turn_first_come_first_served():
    pay, calls = Pay(), bulkhead(initial=2)
    callers = [asyncio.create_task(calls.call(pay.call, wait_s=5, is_drop=never_drop)) for _ in range(4)]
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
    first = asyncio.create_task(calls.call(pay.call, wait_s=5, is_drop=never_drop))
    await pay.started(1)
    with pytest.raises(BulkheadFull, match="no turn within 0.05s"):
        await calls.call(pay.call, wait_s=0.05, is_drop=never_drop)
    assert len(pay.calls) == 1
    pay.calls[0].set_result("done")
    assert await first == "done"
    assert await asyncio.wait_for(calls.call(lambda: asyncio.sleep(0, "next"), wait_s=1, is_drop=never_drop), 1) \
        == "next"  # the refused caller left no slot taken


async def test_with_the_queue_full_a_caller_is_refused_at_once():
    pay, calls = Pay(), bulkhead(initial=1, waiting=1)
    running = asyncio.create_task(calls.call(pay.call, wait_s=5, is_drop=never_drop))
    waiting = asyncio.create_task(calls.call(pay.call, wait_s=5, is_drop=never_drop))
    await pay.started(1)
    await asyncio.sleep(0)  # ok-sleep: lets the second caller queue
    with pytest.raises(BulkheadFull, match="no room to wait"):
        await calls.call(pay.call, wait_s=5, is_drop=never_drop)
    pay.calls[0].set_result(1)
    await pay.started(2)
    pay.calls[1].set_result(2)
    assert (await running, await waiting) == (1, 2)


async def test_a_waiting_caller_that_is_cancelled_gives_its_place_up():
    pay, calls = Pay(), bulkhead(initial=1)
    running = asyncio.create_task(calls.call(pay.call, wait_s=5, is_drop=never_drop))
    await pay.started(1)
    gone = asyncio.create_task(calls.call(pay.call, wait_s=5, is_drop=never_drop))
    await asyncio.sleep(0)  # ok-sleep: lets it queue
    gone.cancel()
    pay.calls[0].set_result("done")  # the turn passes to the cancelled caller as it leaves
    await running
    assert (await asyncio.gather(gone, return_exceptions=True))[0].__class__ is asyncio.CancelledError
    assert calls.in_flight == 0 and len(pay.calls) == 1


async def test_a_dropped_call_lowers_the_limit_and_an_answered_refusal_does_not():
    calls = Bulkhead("pay-test", AdaptiveLimit(LimitSettings(initial=10, minimum=1, maximum=10, backoff=0.5)), 10)

    async def timed_out():
        raise PaymentUnavailable("pay did not answer within 0.61s")

    async def declined():
        raise PaymentDeclined("over the limit")
    is_drop = lambda exc: isinstance(exc, PaymentUnavailable)  # noqa: E731 - as the pay client says
    with pytest.raises(PaymentDeclined):
        await calls.call(declined, wait_s=1, is_drop=is_drop)
    assert calls.limit.value == 10
    with pytest.raises(PaymentUnavailable):
        await calls.call(timed_out, wait_s=1, is_drop=is_drop)
    assert calls.limit.value == 5


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pay_client(breaker: CircuitBreaker, calls: Bulkhead, charge) -> PayClient:
    client = PayClient(None, "http://pay", 0.61, breaker, Fallback.REJECT, calls, wait_s=0.05)
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
