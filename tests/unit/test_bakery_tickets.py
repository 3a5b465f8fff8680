"""The baker's decisions on tickets."""
import pytest

from agents.bakery.tickets import (
    CLOSED, CONFIRMED, CONFIRMING, REJECTED, DecisionRefused, after_event, bakery_id_for, check_decision,
    close_on_cancel, close_on_refund, decide, open_ticket,
)
from agents.events import make_event


def test_a_ticket_id_is_stable_per_order():
    assert bakery_id_for(1) == bakery_id_for(1) != bakery_id_for(2)
    assert open_ticket(1) == {"orderId": 1, "bakeryId": bakery_id_for(1), "status": CONFIRMING}


@pytest.mark.parametrize(
    "body, status",
    [({"orderId": 1, "status": "Baked"}, 400), ({"orderId": "1", "status": CONFIRMED}, 400),
     ({"orderId": 0, "status": CONFIRMED}, 400), ([], 400), ({"orderId": 1, "status": REJECTED, "reason": 5}, 400)],
)
def test_malformed_decisions_are_refused(body, status):
    with pytest.raises(DecisionRefused) as refused:
        check_decision(body)
    assert refused.value.status == status


def test_confirming_a_ticket():
    assert check_decision({"orderId": 1, "status": CONFIRMED}) == (1, CONFIRMED, None)
    assert decide(open_ticket(1), 1, CONFIRMED) is True
    assert decide({**open_ticket(1), "status": CONFIRMED}, 1, CONFIRMED) is False  # a repeat is not news


def test_unknown_and_closed_tickets_are_refused():
    with pytest.raises(DecisionRefused) as unknown:
        decide(None, 1, CONFIRMED)
    assert unknown.value.status == 404
    with pytest.raises(DecisionRefused) as closed:
        decide({**open_ticket(1), "status": CLOSED}, 1, CONFIRMED)
    assert closed.value.status == 409


def test_a_refund_closes_an_unconfirmed_ticket_only():
    assert close_on_refund(open_ticket(1))["status"] == CLOSED
    assert close_on_refund({**open_ticket(1), "status": CONFIRMED}) is None
    assert close_on_refund(None) is None


def test_the_bakery_folds_its_own_events():
    opened = make_event("BakeryTicketOpened", correlation_id="c", orderId=1, bakeryId=bakery_id_for(1))
    confirmed = make_event("BakeryConfirmed", correlation_id="c", orderId=1, bakeryId=bakery_id_for(1))
    ticket = after_event(None, opened)
    assert ticket == open_ticket(1)
    assert after_event(ticket, opened) is None
    assert after_event(ticket, confirmed)["status"] == CONFIRMED


def test_rejecting_a_ticket_carries_the_bakers_reason():
    assert check_decision({"orderId": 1, "status": REJECTED}) == (1, REJECTED, "rejected by the bakery")
    assert check_decision({"orderId": 1, "status": REJECTED, "reason": "no flour"})[2] == \
        "rejected by the bakery: no flour"
    assert decide(open_ticket(1), 1, REJECTED) is True
    with pytest.raises(DecisionRefused) as too_late:
        decide({**open_ticket(1), "status": CONFIRMED}, 1, REJECTED)
    assert too_late.value.status == 409


def test_a_cancel_closes_an_open_ticket_or_forestalls_one_but_never_undoes_a_confirmation():
    assert close_on_cancel(open_ticket(1), 1)["status"] == CLOSED
    assert close_on_cancel(None, 2) == {**open_ticket(2), "status": CLOSED}
    assert close_on_cancel({**open_ticket(1), "status": CONFIRMED}, 1) is None
    assert close_on_cancel({**open_ticket(1), "status": CLOSED}, 1) is None
