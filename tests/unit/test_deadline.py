"""The saga's deadlines: when an open order is cancelled, and when a stalled one is repaired."""
from dataclasses import replace

import pytest

from agents.events import make_event
from agents.order.deadline import (
    CANCEL,
    REPAIR,
    deadline_after,
    deadline_after_event,
    deadline_of,
    fold,
    overdue,
    reminder,
)
from agents.order.lifecycle import Deadline, OrderRecord

T0 = "2026-01-01T00:00:00.000+00:00"
EPOCH = 1767225600.0
FIELDS = {"OrderPlaced": dict(item="cake", qty=1, price=25000), "OrderCancelled": dict(reason="r"),
          "PayApproved": dict(paymentId=1, price=25000), "BakeryConfirmed": dict(bakeryId="b"),
          "BakeryTicketClosed": dict(bakeryId="b", reason="r"), "OrderStalled": dict(status="Cancelling", reason="r")}


def event(event_type: str, at: str = T0, **fields):
    return {**make_event(event_type, correlation_id="c", orderId=1, **FIELDS[event_type], **fields), "occurredAt": at}


def after(current, e, status="Ordered", ended=False):
    return deadline_after_event(current, e, status, ended, deadline_s=300, repair_s=60)


def test_the_deadline_counts_from_when_the_saga_began():
    assert deadline_after(T0, 300) == EPOCH + 300
    assert after(None, event("OrderPlaced")) == Deadline(EPOCH + 300, CANCEL, 0)


def test_only_an_open_order_has_a_deadline():
    first = after(None, event("OrderPlaced"))
    assert after(first, event("PayApproved", at="2026-01-01T00:00:01+00:00"), "Paid") == first
    assert after(first, event("BakeryConfirmed"), "Confirmed", ended=True) is None


def test_a_cancel_sets_the_repair_deadline_once():
    cancelled = after(Deadline(EPOCH + 300, CANCEL, 0), event("OrderCancelled"), "Cancelling")
    assert cancelled == Deadline(EPOCH + 60, REPAIR, 0)
    assert after(cancelled, event("BakeryTicketClosed", at="2026-01-01T00:00:30+00:00"), "Cancelling") == cancelled


def test_a_deadline_lost_in_a_crash_is_set_again_from_the_order_s_state():
    assert after(None, event("BakeryTicketClosed"), "Cancelling") == Deadline(EPOCH + 60, REPAIR, 0)


def test_each_repair_waits_twice_as_long_as_the_one_before():
    first = after(None, event("OrderStalled", attempt=0), "Cancelling")
    assert first == Deadline(EPOCH + 120, REPAIR, 1)
    second = after(first, event("OrderStalled", attempt=1), "Cancelling")
    assert second == Deadline(EPOCH + 240, REPAIR, 2)
    assert after(second, event("OrderStalled", attempt=0), "Cancelling") == second
    assert after(None, event("OrderStalled", attempt=40), "Cancelling").at == EPOCH + 60 * 32


def test_only_orders_past_their_deadline_are_overdue():
    due = {k: Deadline(at, CANCEL, 0) for k, at in (("1", 100.0), ("2", 200.0), ("3", 150.0))}
    assert overdue(due.items(), now=150.0) == [("1", due["1"]), ("3", due["3"])]
    assert overdue([], now=0) == []


def test_an_order_s_record_keeps_its_deadline_until_it_ends():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=1, item="cake", qty=1, price=25000)
    cancelled = make_event("OrderCancelled", correlation_id="c", orderId=1, reason="by the customer")
    voided = make_event("PayVoided", correlation_id="c", orderId=1, reason="cancelled")
    order = fold(None, placed, deadline_s=300, repair_s=60)
    assert order.deadline == Deadline(deadline_after(placed["occurredAt"], 300), CANCEL, 0)
    order = fold(order, cancelled, deadline_s=300, repair_s=60)
    assert order.deadline == Deadline(deadline_after(cancelled["occurredAt"], 60), REPAIR, 0)
    order = fold(order, voided, deadline_s=300, repair_s=60)
    assert order.status == "Cancelled" and order.deadline is None
    assert deadline_of(order, 300, 60) is None


def test_a_record_kept_before_records_held_deadlines_gets_one_from_its_own_times():
    placed = OrderRecord.from_json({"orderId": 1, "status": "Paid", "placedAt": "2026-11-28T00:00:00+00:00",
                                    "updatedAt": "2026-11-28T00:00:01+00:00"})
    assert deadline_of(placed, 300, 60) == Deadline(deadline_after(placed.placed_at, 300), CANCEL, 0)
    cancelling = replace(placed, status="Cancelling")
    assert deadline_of(cancelling, 300, 60) == Deadline(deadline_after(placed.updated_at, 60), REPAIR, 0)
    assert deadline_of(replace(placed, status="Confirmed"), 300, 60) is None


@pytest.mark.parametrize("then, announced", [(CANCEL, "OrderCancelled"), (REPAIR, "OrderStalled")])
def test_a_reminder_sent_again_is_the_same_event(then, announced):
    due, order = Deadline(0.0, then, 2), OrderRecord(status="Cancelling", correlation_id="saga-1")
    first = reminder(1, due, order)
    assert first["type"] == announced and first["correlationId"] == "saga-1"
    assert reminder(1, due, order)["eventId"] == first["eventId"]


def test_each_repair_is_a_new_event():
    order = OrderRecord(status="Cancelling")
    ids = {reminder(1, Deadline(0.0, REPAIR, n), order)["eventId"] for n in range(3)}
    assert len(ids) == 3
