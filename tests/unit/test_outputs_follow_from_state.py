"""Outputs follow from state, handler by handler: apply an input, "crash" before its outputs reach Kafka
(the state kept, the outputs lost), deliver the input again: the same outputs appear, with the same ids, so
consumers see each once. The bakery's handler is tested so in test_bakery_tickets."""
import json
from types import SimpleNamespace

import pytest

from agents.catalog import catalog
from agents.events import make_event
from agents.order import deadline, intake
from agents.order.lifecycle import OrderStatus
from agents.order.menu import OrderRequest
from agents.pay.ledger import Ledger
from agents.pay.payments import PaymentRequest

CAKE = OrderRequest("cake", 1, 25000)


class Sent:
    """A stand-in for Kafka: what was sent, with offsets."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    async def __call__(self, event: dict) -> int:
        self.events.append(event)
        return len(self.events) - 1


class UnavailablePay:
    """pay as the edge sees it when it is down: every charge fails the same way, as often as it is tried."""
    fallback = intake.Fallback.REJECT
    breaker = SimpleNamespace(settings=SimpleNamespace(open_seconds=5.0))

    async def charge(self, order_id, order, correlation):
        raise intake.PaymentUnavailable("pay is unreachable")


@pytest.mark.parametrize("fallback", [intake.Fallback.REJECT, intake.Fallback.DEFER])
async def test_a_request_placed_again_after_a_crash_sends_the_same_events(fallback):
    pay = UnavailablePay()
    pay.fallback = fallback
    first, again = Sent(), Sent()
    placement = await intake.place_reserved(first, pay, CAKE, 7, "c", "alice", cause="request/r1")
    # The crash lost the events; the request comes again and its placement goes on with the number on record.
    await intake.place_reserved(again, pay, CAKE, 7, "c", "alice", cause="request/r1")
    assert [e["eventId"] for e in again.events] == [e["eventId"] for e in first.events]
    # A request whose placement was recorded in full announces it again from the record: the same events too.
    from_record = [intake.placed_event(7, CAKE, "c", "alice", "request/r1"),
                   intake.outcome_event(placement, CAKE, "c", "request/r1")]
    assert [e["eventId"] for e in from_record] == [e["eventId"] for e in first.events]


async def test_orders_from_the_rest_edge_each_get_events_of_their_own():
    first, second = Sent(), Sent()
    await intake.place_reserved(first, UnavailablePay(), CAKE, 7, "c")
    await intake.place_reserved(second, UnavailablePay(), CAKE, 8, "c")
    assert {e["eventId"] for e in first.events}.isdisjoint(e["eventId"] for e in second.events)


async def open_ledger(path) -> Ledger:
    ledger = Ledger(path / "ledger.sqlite3", lambda t: catalog().topic_of_event(t).name, limit=1_000_000)
    await ledger.open()
    return ledger


async def test_pay_s_outbox_keeps_what_a_crash_kept_from_kafka(tmp_path):
    books = await open_ledger(tmp_path)
    await books.record(PaymentRequest(1, 25000, "apply"), "c")
    await books.close()  # the crash: the charge committed, its announcement never published
    books = await open_ledger(tmp_path)
    try:
        pending = await books.unpublished()
        assert [json.loads(e.value)["type"] for e in pending] == ["PayApproved"]
        await books.record(PaymentRequest(1, 25000, "apply"), "c")  # the request, again
        assert await books.unpublished() == pending  # nothing new, nothing lost
    finally:
        await books.close()


async def test_a_stalled_order_s_payment_events_are_announced_again_unchanged(tmp_path):
    books = await open_ledger(tmp_path)
    await books.record(PaymentRequest(1, 25000, "apply"), "c")
    await books.void(1, "cancelled", "c")
    await books.record(PaymentRequest(2, 25000, "apply"), "c")
    announced = await books.unpublished()
    await books.mark_published([e.id for e in announced])
    assert await books.announce_again(1) == 2
    assert await books.unpublished() == [e for e in announced if e.key == b"1"]
    await books.close()


def test_a_fold_seen_again_keeps_the_row_it_made():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=1, item="cake", qty=1, price=25000)
    paid = make_event("PayApproved", correlation_id="c", orderId=1, paymentId=9, price=25000)
    row = deadline.fold(deadline.fold(None, placed, 300, 60), paid, 300, 60)
    # Seen again, the fold reports nothing new: the row the worker has is the one on the changelog (a row is
    # stored only once the broker has it), so nothing needs writing again.
    assert deadline.fold(row, paid, 300, 60) is None and row.status == OrderStatus.PAID.value


def test_an_order_s_deadline_is_the_same_however_often_its_events_come():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=1, item="cake", qty=1, price=25000)
    first = deadline.deadline_after_event(None, placed, "Ordered", False, 300, 60)
    assert deadline.deadline_after_event(first, placed, "Ordered", False, 300, 60) == first
