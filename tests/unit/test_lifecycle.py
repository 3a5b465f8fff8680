"""The order lifecycle, exhaustively: which transitions exist, and how events move an order in any order."""
import itertools

import pytest

from agents.events import make_event
from agents.order.lifecycle import (
    OUTCOME_RULES,
    STATUS_AFTER,
    TRANSITIONS,
    CancelRefused,
    OrderRecord,
    OrderStatus,
    apply_event,
    customer_cancel,
    is_terminal,
    public_view,
    reachable,
    status_of,
)

S = OrderStatus
HAPPY = [S.ORDERED, S.PAID, S.CONFIRMING, S.CONFIRMED]


def test_the_saga_ends_only_at_its_dead_ends_or_confirmed():
    assert set(TRANSITIONS) == set(OrderStatus)
    ends = {S.CONFIRMED, S.REJECTED, S.CANCELLED, S.PAYMENT_FAILED, S.REFUNDED}
    assert {s for s in OrderStatus if is_terminal(s)} == ends
    # Only a person moves an order on from where its saga ended: an admin's refund of a confirmed one.
    assert {s for s in OrderStatus if not TRANSITIONS[s]} == ends - {S.CONFIRMED}
    assert TRANSITIONS[S.CONFIRMED] == {S.REFUNDED}


@pytest.mark.parametrize("source, target", list(itertools.product(OrderStatus, OrderStatus)))
def test_reachability_matches_the_transition_table(source, target):
    def walk(state, seen):
        for nxt in TRANSITIONS[state]:
            if nxt not in seen:
                seen.add(nxt)
                walk(nxt, seen)
        return seen

    assert reachable(source, target) == (target in walk(source, set()))


def test_the_happy_path_only_moves_forward():
    for earlier, later in itertools.combinations(HAPPY, 2):
        assert reachable(earlier, later) and not reachable(later, earlier)


def test_only_an_unpaid_order_can_be_rejected_or_fail_payment():
    assert {s for s in OrderStatus if reachable(s, S.REJECTED)} == {S.ORDERED}
    assert {s for s in OrderStatus if reachable(s, S.PAYMENT_FAILED)} == {S.ORDERED, S.PAYMENT_PENDING}


def test_a_deferred_payment_joins_the_happy_path_or_ends_it():
    assert {s for s in OrderStatus if reachable(S.PAYMENT_PENDING, s)} == set(OrderStatus) - {
        S.ORDERED, S.PAYMENT_PENDING, S.REJECTED}
    assert not any(reachable(s, S.PAYMENT_PENDING) for s in HAPPY[1:])


def test_every_open_order_can_still_end():
    for status in OrderStatus:
        assert is_terminal(status) or any(reachable(status, end) for end in OrderStatus if is_terminal(end))
    # (and a confirmed order may later be refunded by an admin)
    assert {s for s in OrderStatus if reachable(S.CANCELLING, s)} == {S.CANCELLED, S.CONFIRMED, S.REFUNDED}


@pytest.mark.parametrize("status", list(OrderStatus))
def test_who_may_cancel_when(status):
    order = {"id": 7, "status": status.value, "correlationId": "saga-7"}
    if is_terminal(status):
        with pytest.raises(CancelRefused) as refused:
            customer_cancel(order, "asker")
        assert refused.value.details == {"orderId": 7, "status": status.value}
        assert str(refused.value).startswith("order 7 cannot be cancelled: ")
    elif status == S.CANCELLING:
        assert customer_cancel(order, "asker") is None  # asked again: the first cancel is under way
    else:
        cancel = customer_cancel(order, "asker")
        assert (cancel["type"], cancel["orderId"], cancel["correlationId"]) == ("OrderCancelled", 7, "saga-7")


def test_a_cancelled_order_keeps_the_reason_it_was_cancelled_for():
    placed, paid, opened, _ = saga_events()
    cancel = make_event("OrderCancelled", correlation_id="c", orderId=1, reason="cancelled by the customer")
    closed = make_event("BakeryTicketClosed", correlation_id="c", orderId=1, bakeryId="b1", reason="other")
    refund = make_event("PayCanceled", correlation_id="c", orderId=1, paymentId=10, price=25000)
    order = None
    for event in (placed, paid, opened, cancel, closed, refund):
        order = apply_event(order, event)
    assert (order.status, order.reason) == ("Cancelled", "cancelled by the customer")


def test_every_status_an_event_announces_has_its_rule():
    alone = {next(iter(events)): status for events, status in OUTCOME_RULES if len(events) == 1}
    assert alone == dict(STATUS_AFTER)
    together = [(events, status) for events, status in OUTCOME_RULES if len(events) > 1]
    assert together == [({"BakeryConfirmed", "PayCanceled"}, S.REFUNDED)]


def test_a_later_rule_never_outranks_an_end_reachable_from_it():
    # Read down the rules, the statuses move back along the paths an order takes: a rule that wins is never
    # one the order could have moved on from, except where an end outranks a path (a rejection, a decline).
    for (_, earlier), (_, later) in itertools.combinations(OUTCOME_RULES, 2):
        assert not reachable(earlier, later) or earlier == later, (earlier, later)


@pytest.mark.parametrize("order_of_arrival", list(itertools.permutations(range(6))))
def test_an_admins_refund_of_a_confirmed_order_ends_it_refunded_with_the_admins_reason(order_of_arrival):
    cancel = make_event("OrderCancelled", correlation_id="c", orderId=1, reason="cancelled by the customer")
    refund = make_event("PayCanceled", correlation_id="c", orderId=1, paymentId=10, price=25000,
                        reason="stale bread", refundedBy="root")
    events = [*saga_events(), cancel, refund]  # the customer's cancel came too late; the admin refunded later
    order = None
    for i in order_of_arrival:
        order = apply_event(order, events[i])
    assert (order.status, order.reason) == ("Refunded", "stale bread")


def event_of(event_type: str):
    fields = {"OrderPlaced": dict(item="cake", qty=1, price=25000), "OrderRejected": dict(reason="pay down"),
              "OrderCancelled": dict(reason="saga deadline passed"), "PayVoided": dict(reason="pay down"),
              "PayApproved": dict(paymentId=9, price=25000), "PayCanceled": dict(paymentId=10, price=25000),
              "BakeryTicketClosed": dict(bakeryId="b1", reason="cancelled"), "BakeryConfirmed": dict(bakeryId="b1"),
              "BakeryTicketOpened": dict(bakeryId="b1")}
    return make_event(event_type, correlation_id="c", orderId=1, **fields[event_type])


@pytest.mark.parametrize("saga, ends", [
    # pay was down at intake; the deadline fired before the rejection arrived; pay voided.
    (["OrderPlaced", "OrderRejected", "OrderCancelled", "PayVoided"], "Rejected"),
    # pay took the charge after the edge gave up: refunded, and the order stays rejected.
    (["OrderPlaced", "OrderRejected", "PayApproved", "PayCanceled"], "Rejected"),
    # the deadline cancelled a paid order; the bakery closed its ticket; pay refunded.
    (["OrderPlaced", "PayApproved", "OrderCancelled", "BakeryTicketClosed", "PayCanceled"], "Cancelled"),
    # the cancel came too late: the bakery answered with its confirmation.
    (["OrderPlaced", "PayApproved", "BakeryTicketOpened", "BakeryConfirmed", "OrderCancelled"], "Confirmed"),
])
def test_every_fold_of_the_same_events_ends_the_same_whatever_order_they_arrive_in(saga, ends):
    events = [event_of(t) for t in saga]
    for arrival in itertools.permutations(events):
        order = None
        for event in arrival:
            order = apply_event(order, event)
        assert order.status == ends, [e["type"] for e in arrival]
    assert status_of(saga) == OrderStatus(ends)


def saga_events():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=1, item="cake", qty=1, price=25000)
    paid = make_event("PayApproved", correlation_id="c", orderId=1, paymentId=9, price=25000)
    opened = make_event("BakeryTicketOpened", correlation_id="c", orderId=1, bakeryId="b1")
    confirmed = make_event("BakeryConfirmed", correlation_id="c", orderId=1, bakeryId="b1")
    return [placed, paid, opened, confirmed]


@pytest.mark.parametrize("order_of_arrival", list(itertools.permutations(range(4))))
def test_the_saga_ends_confirmed_whatever_order_its_events_arrive_in(order_of_arrival):
    events = saga_events()
    order = None
    for i in order_of_arrival:
        order = apply_event(order, events[i])
    assert public_view(order) == {"id": 1, "item": "cake", "qty": 1, "price": 25000, "status": "Confirmed",
                                  "correlationId": "c"}
    assert order.payment_id == 9 and order.bakery_id == "b1"


@pytest.mark.parametrize("order_of_arrival", list(itertools.permutations(range(5))))
def test_a_deferred_saga_ends_confirmed_whatever_order_its_events_arrive_in(order_of_arrival):
    requested = make_event("PaymentRequested", correlation_id="c", orderId=1, price=25000, reason="breaker open")
    events = [saga_events()[0], requested, *saga_events()[1:]]
    order = None
    for i in order_of_arrival:
        order = apply_event(order, events[i])
    assert order.status == "Confirmed" and order.reason is None


def test_a_redelivered_event_is_recognised():
    placed = saga_events()[0]
    order = apply_event(None, placed)
    assert apply_event(order, placed) is None


def test_a_rejected_order_stays_rejected_when_a_late_payment_arrives():
    placed, paid, *_ = saga_events()
    rejected = make_event("OrderRejected", correlation_id="c", orderId=1, reason="payment unavailable")
    order = apply_event(apply_event(apply_event(None, placed), rejected), paid)
    assert order.status == "Rejected" and order.reason == "payment unavailable"


def test_the_reason_is_kept_even_when_the_refund_overtakes_the_rejection_that_caused_it():
    placed, paid, opened, _ = saga_events()
    refund = make_event("PayCanceled", correlation_id="c", orderId=1, paymentId=10, price=25000)
    rejected = make_event("BakeryRejected", correlation_id="c", orderId=1, bakeryId="b1", reason="no flour")
    closed = make_event("BakeryTicketClosed", correlation_id="c", orderId=1, bakeryId="b1", reason="later")
    order = None
    for event in (placed, paid, opened, refund, rejected, closed):
        order = apply_event(order, event)
    assert (order.status, order.reason) == ("Cancelled", "no flour")


def test_an_order_record_reads_back_from_its_row_as_rows_were_always_written():
    events, order = saga_events(), None
    for event in events:
        order = apply_event(order, event)
    row = order.to_json()
    # The row's shape is the one the order table has always held (Mypage follows it on the changelog).
    assert set(row) == {"orderId", "item", "qty", "price", "paymentId", "bakeryId", "correlationId", "status",
                        "action", "placedAt", "updatedAt", "endedAt", "facts", "eventIds", "history"}
    assert row["history"][0] == {"event": "OrderPlaced", "at": events[0]["occurredAt"]}
    assert row["eventIds"] == [e["eventId"] for e in events]
    assert OrderRecord.from_json(row) == order


def test_a_row_kept_before_records_held_their_story_still_reads():
    kept = {"orderId": 1, "status": "Paid", "updatedAt": "2026-11-28T00:00:01+00:00"}
    order = OrderRecord.from_json(kept)
    assert (order.order_id, order.status, order.history, order.deadline) == (1, "Paid", (), None)
