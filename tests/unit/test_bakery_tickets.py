"""The baker's decisions on tickets."""
from dataclasses import replace

import pytest

from agents.bakery.tickets import (
    CLOSED,
    CONFIRMED,
    CONFIRMING,
    REJECTED,
    UNPAID,
    DecisionRefused,
    NoTicket,
    Ticket,
    TicketDecided,
    announcements,
    applied,
    bakery_id_for,
    decide,
    first_waiting,
    has_ticket,
    on_cancel,
    on_refund,
    open_ticket,
    parse_decision,
    react,
    rules,
    ticket_of,
    waiting_tickets,
)
from agents.catalog import catalog
from agents.events import make_event
from agents.order.lifecycle import apply_event


def test_a_ticket_id_is_stable_per_order():
    assert bakery_id_for(1) == bakery_id_for(1) != bakery_id_for(2)
    assert open_ticket(1).to_json() == {"orderId": 1, "bakeryId": bakery_id_for(1), "status": CONFIRMING,
                                        "opened": True}


def test_a_ticket_reads_back_from_any_row_ever_kept():
    ticket = Ticket(7, REJECTED, opened_at="2026-01-01T00:00:01.000+00:00", correlation_id="c", reason="no flour")
    assert Ticket.from_json(ticket.to_json()) == ticket
    assert Ticket.from_json({"orderId": 7, "status": CONFIRMING}) == open_ticket(7)  # no bakeryId, opened, openedAt
    assert ticket_of(None) is None


@pytest.mark.parametrize(
    "body",
    [{"orderId": 1, "status": "Baked"}, {"orderId": "1", "status": CONFIRMED}, {"orderId": 0, "status": CONFIRMED},
     [], {"orderId": 1, "status": REJECTED, "reason": 5}],
)
def test_malformed_decisions_are_refused(body):
    with pytest.raises(DecisionRefused) as refused:
        parse_decision(body)
    assert type(refused.value) is DecisionRefused  # not a matter of any ticket: the decision itself is wrong


def test_confirming_a_ticket():
    assert parse_decision({"orderId": 1, "status": CONFIRMED}) == (1, CONFIRMED, None)
    assert decide(open_ticket(1), 1, CONFIRMED) is True
    assert decide(replace(open_ticket(1), status=CONFIRMED), 1, CONFIRMED) is False  # a repeat is not news


def test_a_decision_on_no_ticket_is_refused_as_such():
    with pytest.raises(NoTicket):
        decide(None, 1, CONFIRMED)


def test_a_decision_on_a_closed_ticket_is_refused_as_decided():
    with pytest.raises(TicketDecided):
        decide(replace(open_ticket(1), status=CLOSED), 1, CONFIRMED)


def test_a_refund_closes_an_undecided_ticket_only():
    assert on_refund(open_ticket(1), "refunded") == replace(open_ticket(1), status=CLOSED, reason="refunded")
    assert on_refund(replace(open_ticket(1), status=CONFIRMED), "refunded").status == CONFIRMED
    assert on_refund(None, "refunded") is None


def test_rejecting_a_ticket_carries_the_bakers_reason():
    assert parse_decision({"orderId": 1, "status": REJECTED}) == (1, REJECTED, "rejected by the bakery")
    assert parse_decision({"orderId": 1, "status": REJECTED, "reason": "no flour"})[2] == \
        "rejected by the bakery: no flour"
    assert decide(open_ticket(1), 1, REJECTED) is True
    with pytest.raises(TicketDecided):
        decide(replace(open_ticket(1), status=CONFIRMED), 1, REJECTED)


def test_a_cancel_closes_an_open_ticket_or_forestalls_one_but_never_undoes_a_decision():
    assert on_cancel(open_ticket(1), 1, "r").status == CLOSED
    assert on_cancel(None, 2, "r") == replace(open_ticket(2), status=CLOSED, opened=False, reason="r")
    for decided in (CONFIRMED, REJECTED, CLOSED):
        assert on_cancel(replace(open_ticket(1), status=decided), 1, "r").status == decided


def test_a_ticket_announces_what_it_says_was_decided():
    def said(ticket):
        return [(e["type"], e.get("reason")) for e in announcements(ticket, "c")]

    assert said(open_ticket(1)) == [("BakeryTicketOpened", None)]
    assert said(replace(open_ticket(1), status=CONFIRMED)) == [("BakeryTicketOpened", None),
                                                                ("BakeryConfirmed", None)]
    assert said(on_cancel(None, 1, "too late")) == [("BakeryTicketClosed", "too late")]
    assert said(replace(open_ticket(1), status=REJECTED))[1] == ("BakeryRejected", "rejected by the bakery")
    assert said(None) == []


PAID = make_event("PayApproved", correlation_id="c", orderId=7, paymentId=1, price=25000)
CANCELLED = make_event("OrderCancelled", correlation_id="c", orderId=7, reason="saga deadline passed")
REFUNDED = make_event("PayCanceled", correlation_id="c", orderId=7, paymentId=2, price=25000)
DECIDED = make_event("BakerDecided", correlation_id="c", orderId=7, decision=REJECTED, reason="no flour")
BY_HAND = rules(auto_confirm=False)  # the bakers decide, as the shared system's do
PLACED = make_event("OrderPlaced", correlation_id="c", orderId=7, item="baguette", qty=2, price=8000)
KNOWN = Ticket(7, UNPAID, opened=False, item="baguette", qty=2)  # the order placed, its payment not come
STALLED = make_event("OrderStalled", correlation_id="c", orderId=7, status="Cancelling", attempt=0, reason="stalled")


def seen_by_mypage(*sent: list) -> list[str]:
    """The story an order's record keeps of everything sent, each event counted once however often it came."""
    row = None
    for event in (e for batch in sent for e in batch):
        row = apply_event(row, event) or row
    return [step.event for step in row.history] if row else []


@pytest.mark.parametrize("auto_confirm", [False, True])
@pytest.mark.parametrize("before, event", [
    (None, PAID), (open_ticket(7), CANCELLED), (None, CANCELLED), (open_ticket(7), REFUNDED),
    (replace(open_ticket(7), status=CONFIRMED), CANCELLED), (open_ticket(7), STALLED), (open_ticket(7), DECIDED),
    (KNOWN, PAID), (KNOWN, CANCELLED), (open_ticket(7), PLACED),
])
def test_an_input_seen_again_after_a_crash_ends_with_the_same_events_sent(before, event, auto_confirm):
    recorded, sent = react(rules(auto_confirm), before, event)
    # The crash: the ticket reached the table (and its changelog), the events never reached the broker.
    _, sent_again = react(rules(auto_confirm), recorded or before, event)
    assert [e["eventId"] for e in sent_again] == [e["eventId"] for e in sent] != []
    # And had they been sent the first time too, consumers see each event once.
    assert seen_by_mypage(sent, sent_again) == seen_by_mypage(sent)


def test_a_cancel_on_a_confirmed_ticket_is_answered_with_the_confirmation():
    confirmed = replace(open_ticket(7, "c"), status=CONFIRMED)
    recorded, sent = react(BY_HAND, confirmed, CANCELLED)
    assert recorded is None  # nothing changes
    assert [e["type"] for e in sent] == ["BakeryTicketOpened", "BakeryConfirmed"]
    # ... the very events the bakery sent when it confirmed (the same ids).
    _, first = react(rules(auto_confirm=True), None, PAID)
    assert [e["eventId"] for e in sent] == [e["eventId"] for e in first]


def test_the_bakery_reads_none_of_its_own_events_back():
    # What it announced follows from its tickets, and an input whose announcements a crash lost is read again.
    consumed = {event for topic in catalog().topics_consumed_by("bakery") for event in topic.events}
    assert consumed.isdisjoint(catalog().topic_of_event("BakeryTicketOpened").events)


def test_the_baker_s_decision_is_applied_in_line_with_the_ticket_s_other_events():
    decided, sent = react(BY_HAND, open_ticket(7, "c"), DECIDED)
    assert (decided.status, decided.reason) == (REJECTED, "no flour")
    assert [(e["type"], e.get("reason")) for e in sent] == [("BakeryTicketOpened", None),
                                                             ("BakeryRejected", "no flour")]
    # A cancel that came first wins: the decision changes nothing, and the bakery says the ticket is closed.
    closed, _ = react(BY_HAND, open_ticket(7, "c"), CANCELLED)
    unchanged, said = react(BY_HAND, closed, DECIDED)
    assert unchanged is None and [e["type"] for e in said] == ["BakeryTicketOpened", "BakeryTicketClosed"]
    assert react(BY_HAND, None, DECIDED) == (None, [])
    with pytest.raises(TicketDecided):
        applied(closed, 7, REJECTED)  # and the baker is told so
    assert applied(decided, 7, REJECTED) == decided


def test_only_undecided_tickets_wait_the_oldest_first():
    tickets = [Ticket(9), Ticket(3, CONFIRMED), Ticket(5), Ticket(7, CLOSED), Ticket(6)]
    assert waiting_tickets(tickets, 2) == ([Ticket(5), Ticket(6)], 3)
    assert first_waiting([([Ticket(5), Ticket(6)], 3), ([Ticket(2)], 1)], 2) == ([Ticket(2), Ticket(5)], 4)


def test_the_tickets_waiting_longest_are_those_paid_first_whatever_their_numbers():
    paid_at = {101: "2026-01-01T00:00:01.000+00:00", 2: "2026-01-01T00:00:02.000+00:00"}
    tickets = [react(BY_HAND, None, make_event("PayApproved", correlation_id="c", orderId=n, paymentId=n, price=1)
                     | {"occurredAt": at})[0] for n, at in paid_at.items()]
    assert [t.order_id for t in waiting_tickets(tickets, 2)[0]] == [101, 2]
    assert tickets[0].opened_at == paid_at[101]


def test_every_event_the_bakery_has_a_rule_for_comes_on_a_topic_topics_yaml_says_it_consumes():
    consumed = {event for topic in catalog().topics_consumed_by("bakery") for event in topic.events}
    assert set(BY_HAND) <= consumed


def test_an_order_placed_before_its_payment_is_known_to_the_bakery_but_has_no_ticket():
    known, said = react(BY_HAND, None, PLACED)
    assert known == KNOWN and said == [] and not has_ticket(known)
    with pytest.raises(NoTicket):
        decide(known, 7, CONFIRMED)


def test_the_ticket_a_payment_opens_says_what_to_bake():
    opened, said = react(BY_HAND, KNOWN, PAID)
    assert (opened.status, opened.item, opened.qty) == (CONFIRMING, "baguette", 2)
    assert [e["type"] for e in said] == ["BakeryTicketOpened"]


def test_a_ticket_opened_before_its_order_came_fills_in_what_to_bake_when_it_comes():
    opened, said = react(BY_HAND, None, PAID)
    assert opened.item is None  # the page says what to bake is coming
    filled, said_again = react(BY_HAND, opened, PLACED)
    assert (filled.item, filled.qty, filled.status) == ("baguette", 2, CONFIRMING)
    assert [e["eventId"] for e in said_again] == [e["eventId"] for e in said]  # nothing new is announced


def test_an_order_cancelled_before_its_payment_came_is_closed_with_what_it_was():
    closed, said = react(BY_HAND, KNOWN, CANCELLED)
    assert (closed.status, closed.opened, closed.item) == (CLOSED, False, "baguette")
    assert [e["type"] for e in said] == ["BakeryTicketClosed"]
