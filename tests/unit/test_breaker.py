import asyncio

import pytest

from agents.breaker import BreakerSettings, BreakerState, CircuitBreaker, CircuitOpen

SETTINGS = BreakerSettings(window=10, minimum_calls=4, failure_rate=0.5, slow_call_seconds=0.5,
                           slow_call_rate=0.75, open_seconds=5.0, half_open_calls=2)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Down(Exception):
    pass


def make(settings: BreakerSettings = SETTINGS):
    clock, moves = Clock(), []
    breaker = CircuitBreaker("pay", settings, clock=clock, listeners=(lambda name, a, b: moves.append((a, b)),))
    return breaker, clock, moves


async def ok(value="ok"):
    return value


async def fail():
    raise Down("pay is down")


def slow(clock: Clock, seconds: float, error: Exception | None = None):
    async def call():
        clock.now += seconds
        if error:
            raise error
        return "late"
    return call


async def run(breaker, call):
    try:
        return await breaker.call(call)
    except Down:
        return "failed"


async def test_stays_closed_below_minimum_calls_even_if_all_fail():
    breaker, _, _ = make()
    for _ in range(3):
        assert await run(breaker, fail) == "failed"
    assert breaker.state == BreakerState.CLOSED


async def test_opens_at_the_failure_rate_threshold_then_fails_fast():
    breaker, _, moves = make()
    for call in (ok, fail, ok, fail):
        await run(breaker, call)
    assert breaker.state == BreakerState.OPEN
    assert moves == [(BreakerState.CLOSED, BreakerState.OPEN)]
    called = []

    async def would_call():
        called.append(1)
    with pytest.raises(CircuitOpen) as refused:
        await breaker.call(would_call)
    assert called == []
    assert refused.value.retry_after == pytest.approx(5.0)


async def test_below_the_failure_rate_it_stays_closed_over_a_sliding_window():
    breaker, _, _ = make()
    for call in (fail, ok, ok, ok, ok, ok, ok, ok, ok, ok):
        await run(breaker, call)
    assert breaker.state == BreakerState.CLOSED
    # The early failure has slid out of the 10-call window: four of the last ten fail, not five.
    for call in (fail, fail, fail, fail):
        await run(breaker, call)
    assert breaker.state == BreakerState.CLOSED
    await run(breaker, fail)
    assert breaker.state == BreakerState.OPEN


async def test_slow_successes_open_it_too():
    breaker, clock, _ = make()
    for _ in range(3):
        assert await breaker.call(slow(clock, 0.6)) == "late"
    await breaker.call(ok)
    assert breaker.state == BreakerState.OPEN  # 3 of 4 slow = 0.75


async def test_refused_answers_are_not_failures():
    breaker, _, _ = make()

    async def declined():
        raise ValueError("over the limit")
    for _ in range(6):
        with pytest.raises(ValueError):
            await breaker.call(declined, is_failure=lambda exc: not isinstance(exc, ValueError))
    assert breaker.state == BreakerState.CLOSED


async def open_breaker():
    breaker, clock, moves = make()
    for _ in range(4):
        await run(breaker, fail)
    assert breaker.state == BreakerState.OPEN
    return breaker, clock, moves


async def test_half_opens_after_the_wait_then_closes_on_good_trials():
    breaker, clock, moves = await open_breaker()
    clock.now += 4.9
    assert breaker.retry_after() == pytest.approx(0.1)
    assert breaker.state == BreakerState.OPEN
    clock.now += 0.1
    assert breaker.state == BreakerState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state == BreakerState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state == BreakerState.CLOSED
    assert moves[1:] == [(BreakerState.OPEN, BreakerState.HALF_OPEN), (BreakerState.HALF_OPEN, BreakerState.CLOSED)]
    # Closed again with a clean window: three failures are below the minimum number of calls.
    for _ in range(3):
        await run(breaker, fail)
    assert breaker.state == BreakerState.CLOSED


async def test_half_open_reopens_when_trials_fail():
    breaker, clock, _ = await open_breaker()
    clock.now += 5
    await run(breaker, ok)
    await run(breaker, fail)  # one of two trials failed: 0.5 ≥ failure rate
    assert breaker.state == BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(5.0)


class Held:
    """Calls that wait until released, and tell when `expected` of them have begun (inside the breaker)."""

    def __init__(self, expected: int, error: Exception | None = None) -> None:
        self.expected, self.error, self.begun = expected, error, 0
        self.all_begun, self.released = asyncio.Event(), asyncio.Event()

    async def __call__(self):
        self.begun += 1
        if self.begun >= self.expected:
            self.all_begun.set()
        await self.released.wait()
        if self.error:
            raise self.error
        return "trial"


async def test_half_open_lets_only_the_trial_calls_through():
    breaker, clock, _ = await open_breaker()
    clock.now += 5
    held = Held(2)
    trials = [asyncio.create_task(breaker.call(held)) for _ in range(2)]
    await held.all_begun.wait()
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    held.released.set()
    assert await asyncio.gather(*trials) == ["trial", "trial"]
    assert breaker.state == BreakerState.CLOSED


async def test_a_cancelled_trial_gives_its_slot_back():
    breaker, clock, _ = await open_breaker()
    clock.now += 5
    held = Held(2)  # never released: both trials hang until cancelled
    hung = [asyncio.create_task(breaker.call(held)) for _ in range(2)]
    await held.all_begun.wait()
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    for task in hung:
        task.cancel()
    await asyncio.gather(*hung, return_exceptions=True)
    assert breaker.state == BreakerState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert await breaker.call(ok) == "ok"
    assert breaker.state == BreakerState.CLOSED


async def test_a_slow_call_that_outlives_an_opening_does_not_count_later():
    breaker, clock, _ = make()
    late = Held(1, error=Down("late failure"))
    straggler = asyncio.create_task(breaker.call(late))
    await late.all_begun.wait()
    for _ in range(4):
        await run(breaker, fail)
    clock.now += 5
    assert breaker.state == BreakerState.HALF_OPEN
    late.released.set()
    with pytest.raises(Down):
        await straggler
    assert breaker.state == BreakerState.HALF_OPEN  # not a trial: it decides nothing


class StalledHere(Exception):
    pass


async def test_a_call_that_says_nothing_of_the_dependency_is_not_counted():
    breaker, clock, _ = make()

    async def stalled():
        raise StalledHere("timed out while this process stalled")

    def says_nothing(exc):
        return isinstance(exc, StalledHere)
    for _ in range(10):
        with pytest.raises(StalledHere):
            await breaker.call(stalled, says_nothing=says_nothing)
    assert breaker.state == BreakerState.CLOSED
    for _ in range(4):
        await run(breaker, fail)
    clock.now += SETTINGS.open_seconds
    assert breaker.state == BreakerState.HALF_OPEN
    for _ in range(3):
        with pytest.raises(StalledHere):
            await breaker.call(stalled, says_nothing=says_nothing)
    assert breaker.state == BreakerState.HALF_OPEN
    for _ in range(SETTINGS.half_open_calls):  # the slots are all there still
        assert await breaker.call(ok) == "ok"
    assert breaker.state == BreakerState.CLOSED


@pytest.mark.parametrize("bad", [dict(window=0), dict(minimum_calls=130), dict(failure_rate=0),
                                 dict(slow_call_rate=1.5), dict(open_seconds=0), dict(half_open_calls=0)])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError):
        BreakerSettings(**bad)


async def test_the_breaker_s_state_is_exported_for_prometheus():
    from prometheus_client import REGISTRY
    breaker = CircuitBreaker("metrics-probe", SETTINGS, clock=Clock())
    for _ in range(4):
        await run(breaker, fail)

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, {"breaker": "metrics-probe", **labels})
    assert sample("bread_breaker_state") == 1
    assert sample("bread_breaker_transitions_total", from_state="closed", to_state="open") == 1
    assert sample("bread_breaker_calls_total", outcome="failure") == 4
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    assert sample("bread_breaker_calls_total", outcome="not_permitted") == 1


def test_bad_breaker_settings_stop_the_service():
    from agents.order.intake import Fallback
    from agents.runtime.pay_client import PayClient, breaker_settings
    from agents.runtime.stalls import Stalls
    from agents.settings import Settings
    settings = Settings.from_env({"PAY_BREAKER_WINDOW": "50", "PAY_BREAKER_OPEN_S": "2.5", "PAY_FALLBACK": "defer"})
    assert (breaker_settings(settings).window, breaker_settings(settings).open_seconds) == (50, 2.5)
    assert PayClient.from_settings(None, settings, Stalls("test")).fallback == Fallback.DEFER
    with pytest.raises(SystemExit, match="PAY_BREAKER_MIN_CALLS='80': must be at most PAY_BREAKER_WINDOW"):
        Settings.from_env({"PAY_BREAKER_WINDOW": "50", "PAY_BREAKER_MIN_CALLS": "80"})
    with pytest.raises(SystemExit, match="PAY_FALLBACK='retry': must be one of reject, defer"):
        Settings.from_env({"PAY_FALLBACK": "retry"})


@pytest.mark.parametrize("fallback, status, announced", [
    ("reject", "Rejected", "OrderRejected"), ("defer", "PaymentPending", "PaymentRequested")])
async def test_with_the_breaker_open_intake_falls_back_without_calling_pay(fallback, status, announced):
    from agents.order import intake
    from agents.order.menu import OrderRequest
    breaker, clock, _ = make()
    for _ in range(4):
        await run(breaker, fail)
    clock.now += 1
    sent = []

    async def emit(event):
        sent.append(event)
        return len(sent) - 1
    from agents.bulkhead import AdaptiveLimit, Bulkhead, LimitSettings
    from agents.runtime.pay_client import PayClient
    from agents.runtime.stalls import Stalls
    pay = PayClient(None, "http://nowhere", 1.0, breaker, intake.Fallback(fallback),  # never reached: no client
                    Bulkhead("pay", AdaptiveLimit(LimitSettings()), 10), 1.0, Stalls("test"))
    placed = await intake.place(emit, intake.OrderNumbers(emit, "test"), pay, OrderRequest("cake", 1, 25000), "c1")
    assert [e["type"] for e in sent] == ["OrderNumberReserved", "OrderPlaced", announced]
    assert (placed.order_id, placed.status.value) == (1, status)  # the reservation was at offset 0
    assert "circuit breaker for pay is open" in placed.reason
    assert placed.retry_after == (pytest.approx(4.0) if fallback == "reject" else None)
