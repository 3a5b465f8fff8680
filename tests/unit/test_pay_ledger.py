"""pay's ledger on a real SQLite file: charges, refunds, idempotency, voiding, the outbox."""
import asyncio
import json
import sqlite3
from dataclasses import replace

import pytest

from agents.catalog import catalog
from agents.idempotency import InvalidKey, KeyUsedBefore
from agents.pay.ledger import Ledger
from agents.pay.payments import (
    Entry,
    NotAsThePaymentsStand,
    OrderBooks,
    PaymentRefused,
    PaymentRequest,
    RefundNotYours,
    entry_for,
    parse_payment,
)
from agents.pay.saga import saga_handlers
from agents.principals import ADMIN, BAKER, CUSTOMER, SERVICE, Principal

LIMIT = 1_000_000


@pytest.fixture
async def ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3", lambda t: catalog().topic_of_event(t).name, LIMIT)
    await ledger.open()
    yield ledger
    await ledger.close()


def apply(order_id, price=25000):
    return PaymentRequest(order_id=order_id, price=price, action="apply")


async def outbox_types(ledger):
    return [json.loads(e.value)["type"] for e in await ledger.unpublished()]


async def test_a_charge_asked_twice_is_written_once_with_its_announcement(ledger):
    first = await ledger.record(apply(1), "c")
    again = await ledger.record(apply(1), "c")
    assert first.created and not again.created and first.id == again.id
    assert await outbox_types(ledger) == ["PayApproved"]


async def test_a_refund_gives_back_what_was_charged(ledger):
    await ledger.record(apply(1, 50000), "c")
    refund = await ledger.record(PaymentRequest(order_id=1, price=None, action="cancel"), "c")
    assert refund.amount == 50000
    assert await outbox_types(ledger) == ["PayApproved", "PayCanceled"]


async def test_nothing_to_refund_is_a_conflict(ledger):
    with pytest.raises(NotAsThePaymentsStand):
        await ledger.record(PaymentRequest(order_id=2, price=None, action="cancel"), "c")
    assert await outbox_types(ledger) == []


async def test_a_voided_order_keeps_no_money(ledger):
    await ledger.record(apply(3), "c")
    assert await ledger.void(3, "payment unavailable", "c") == "PayCanceled"
    assert await ledger.void(3, "payment unavailable", "c") is None
    assert await outbox_types(ledger) == ["PayApproved", "PayCanceled"]
    assert await ledger.void(4, "payment unavailable", "c") == "PayVoided"
    with pytest.raises(PaymentRefused, match="was rejected"):
        await ledger.record(apply(4), "c")
    assert await outbox_types(ledger) == ["PayApproved", "PayCanceled", "PayVoided"]


async def test_a_charge_over_the_limit_is_declined_once(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3", lambda t: catalog().topic_of_event(t).name, limit=100_000)
    await ledger.open()
    try:
        declined = await ledger.record(apply(7, 250_000), "c")
        again = await ledger.record(apply(7, 250_000), "c")
        assert (declined.action, declined.created, again.created) == ("decline", True, False)
        assert "over the payment limit" in declined.reason and again.reason == declined.reason
        assert await outbox_types(ledger) == ["PayRejected"]
        assert (await ledger.record(apply(8, 100_000), "c")).action == "apply"
        assert await ledger.void(7, "cancelled", "c") == "PayVoided"  # nothing was charged
    finally:
        await ledger.close()


async def test_published_entries_leave_the_outbox(ledger):
    await ledger.record(apply(5), "c")
    entries = await ledger.unpublished()
    assert entries[0].key == b"5" and entries[0].topic == catalog().topic_of_event("PayApproved").name
    await ledger.mark_published([e.id for e in entries])
    assert await ledger.unpublished() == []


async def test_the_ledger_survives_a_reopen(tmp_path):
    path = tmp_path / "l.sqlite3"
    first = Ledger(path, lambda t: "x", LIMIT)
    await first.open()
    await first.record(apply(6), "c")
    await first.close()
    second = Ledger(path, lambda t: "x", LIMIT)
    await second.open()
    assert [p.amount for p in await second.find(6)] == [25000]
    await second.close()


@pytest.mark.parametrize(
    "body, problem",
    [({"orderId": 1, "price": 0, "action": "apply"}, "price"),
     ({"orderId": 1, "price": 5, "action": "steal"}, "action"),
     ({"price": 5}, "orderId"), ("x", "JSON object"),
     # A refund's reason is short text; a charge takes none.
     ({"orderId": 1, "action": "apply", "price": 5, "reason": "x"}, "reason"),
     ({"orderId": 1, "action": "cancel", "reason": ""}, "reason"),
     ({"orderId": 1, "action": "cancel", "reason": "x" * 501}, "reason"),
     ({"orderId": 1, "action": "cancel", "reason": 5}, "reason"),
     ({"orderId": 1, "action": "cancel", "reason": None}, "reason")],
)
def test_bad_payment_requests_are_refused(body, problem):
    with pytest.raises(PaymentRefused, match=problem):
        parse_payment(body)


async def test_payments_arriving_together_are_committed_together_each_on_its_own_merits(ledger):
    import asyncio

    requests = [apply(10), apply(11), PaymentRequest(order_id=12, price=None, action="cancel"), apply(10)]
    outcomes = await asyncio.gather(*(ledger.record(r, "c") for r in requests), return_exceptions=True)
    assert outcomes[0].created and outcomes[1].created
    assert isinstance(outcomes[2], PaymentRefused)  # nothing to refund: refused alone, the others stand
    assert not outcomes[3].created and outcomes[3].id == outcomes[0].id
    assert await outbox_types(ledger) == ["PayApproved", "PayApproved"]


async def test_an_idempotency_key_stays_bound_to_its_first_payment(ledger):
    keyed = PaymentRequest(order_id=30, price=25000, action="apply", idempotency_key="k-30")
    first = await ledger.record(keyed, "c")
    again = await ledger.record(keyed, "c")
    assert first.created and not again.created and again.id == first.id
    with pytest.raises(KeyUsedBefore):
        await ledger.record(PaymentRequest(order_id=31, price=25000, action="apply", idempotency_key="k-30"), "c")
    assert await outbox_types(ledger) == ["PayApproved"]


def test_an_idempotency_key_must_be_short_printable_text():
    assert parse_payment({"orderId": 1, "price": 1}, "abc-1").idempotency_key == "abc-1"
    for bad in ("", "x" * 101, "a\nb"):
        with pytest.raises(InvalidKey, match="Idempotency-Key"):
            parse_payment({"orderId": 1, "price": 1}, bad)


def refund(order_id, reason=None, by=None):
    return PaymentRequest(order_id=order_id, price=None, action="cancel", reason=reason, requested_by=by)


@pytest.mark.parametrize("by", [None, Principal("ops", SERVICE), Principal("root", ADMIN)])
async def test_before_the_bakery_confirms_a_refund_is_the_sagas_or_an_operators(ledger, by):
    await ledger.record(apply(1), "c")
    refunded = await ledger.record(refund(1, by=by), "c")
    assert refunded.created and refunded.amount == 25000


@pytest.mark.parametrize("by, reason, refused_as", [
    (Principal("ops", SERVICE), "stale", RefundNotYours),  # a service is the saga's: it never refunds baked bread
    (Principal("bea", BAKER), "stale", RefundNotYours),
    (Principal("alice", CUSTOMER), "stale", RefundNotYours),
    (Principal("root", ADMIN), None, NotAsThePaymentsStand),  # an admin must say why
    (None, None, NotAsThePaymentsStand),                      # so must anyone with authentication off
])
async def test_once_the_bakery_confirmed_only_an_admin_who_says_why_refunds(ledger, by, reason, refused_as):
    await ledger.record(apply(1), "c")
    await ledger.bakery_confirmed(1)
    await ledger.bakery_confirmed(1)  # seen again: the same
    with pytest.raises(refused_as, match="confirmed by the bakery"):
        await ledger.record(refund(1, reason, by), "c")
    assert await outbox_types(ledger) == ["PayApproved"]
    assert [p.action for p in await ledger.find(1)] == ["apply"]


async def test_an_admin_s_refund_is_written_with_who_asked_why(ledger):
    await ledger.record(apply(1), "c")
    await ledger.bakery_confirmed(1)
    refunded = await ledger.record(refund(1, "stale bread", Principal("root", ADMIN)), "c")
    again = await ledger.record(refund(1, "stale bread", Principal("root", ADMIN)), "c")
    assert (refunded.amount, refunded.reason, refunded.requested_by) == (25000, "stale bread", "root")
    assert not again.created and again.as_json() == refunded.as_json()
    assert refunded.as_json()["reason"] == "stale bread" and refunded.as_json()["requestedBy"] == "root"
    (announced,) = [json.loads(e.value) for e in await ledger.unpublished()][1:]
    assert (announced["type"], announced["reason"], announced["refundedBy"]) == ("PayCanceled", "stale bread", "root")
    assert [(p.action, p.reason, p.requested_by) for p in await ledger.find(1)] == [
        ("apply", None, None), ("cancel", "stale bread", "root")]


async def test_a_ledger_written_before_refund_reasons_and_traces_gains_their_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE payments (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL, "
                      "action TEXT NOT NULL, amount INTEGER NOT NULL, correlation_id TEXT NOT NULL, created_at TEXT "
                      "NOT NULL DEFAULT 'then', UNIQUE (order_id, action)); "
                      "INSERT INTO payments (order_id, action, amount, correlation_id) VALUES (1, 'apply', 5, 'c');"
                      "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB, "
                      "value BLOB NOT NULL, published INTEGER NOT NULL DEFAULT 0);"
                      "INSERT INTO outbox (topic, key, value) VALUES ('bread.payments', '1', X'7B7D');")
    old.close()
    ledger = Ledger(path, lambda t: catalog().topic_of_event(t).name, LIMIT)
    await ledger.open()
    try:
        await ledger.bakery_confirmed(1)
        await ledger.record(refund(1, "wrong cake", Principal("root", ADMIN)), "c")
        assert [(p.action, p.amount, p.reason) for p in await ledger.find(1)] == [
            ("apply", 5, None), ("cancel", 5, "wrong cake")]
        assert [(e.value, e.trace) for e in await ledger.unpublished()][0] == (b"{}", None)
    finally:
        await ledger.close()


async def test_an_event_in_the_outbox_keeps_the_trace_of_the_request_that_wrote_it(tmp_path):
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ledger = Ledger(tmp_path / "l.sqlite3", lambda t: catalog().topic_of_event(t).name, LIMIT,
                    trace_now=lambda: trace)
    await ledger.open()
    try:
        await ledger.record(apply(6), "c")
        await ledger.void(6, "cancelled", "c")
        assert [(json.loads(e.value)["type"], e.trace) for e in await ledger.unpublished()] == [
            ("PayApproved", trace), ("PayCanceled", trace)]
    finally:
        await ledger.close()


def test_a_refund_request_carries_who_asked_why():
    root = Principal("root", ADMIN)
    assert parse_payment({"orderId": 1, "action": "cancel", "reason": "stale"}, None, root) == refund(1, "stale", root)


NOTHING_YET = OrderBooks(charged=None, confirmed=False, voided_reason=None)


def test_a_charge_is_written_as_taken_or_as_declined_over_the_limit():
    assert entry_for(PaymentRequest(1, 500, "apply"), NOTHING_YET, limit=1000) == Entry("apply", 500)
    declined = entry_for(PaymentRequest(1, 5000, "apply"), NOTHING_YET, limit=1000)
    assert (declined.action, declined.amount) == ("decline", 5000) and "over the payment limit" in declined.reason


def test_a_voided_order_is_charged_no_more():
    with pytest.raises(NotAsThePaymentsStand, match="rejected"):
        entry_for(PaymentRequest(1, 500, "apply"), replace(NOTHING_YET, voided_reason="pay timed out"), limit=1000)


CHARGED = replace(NOTHING_YET, charged=700)


def test_a_refund_is_written_for_the_amount_charged():
    assert entry_for(refund(1), CHARGED, limit=1000) == Entry("cancel", 700)


def test_a_refund_without_a_charge_is_refused():
    with pytest.raises(NotAsThePaymentsStand, match="no payment to refund"):
        entry_for(refund(1), NOTHING_YET, limit=1000)


def test_once_the_bakery_confirmed_only_an_admin_refunds():
    confirmed = replace(CHARGED, confirmed=True)
    with pytest.raises(RefundNotYours):
        entry_for(refund(1, "stale", Principal("bea", BAKER)), confirmed, limit=1000)
    assert entry_for(refund(1, "stale", Principal("root", ADMIN)), confirmed, limit=1000) == Entry("cancel", 700,
                                                                                                   "stale")


async def test_every_saga_event_pay_handles_comes_on_a_topic_topics_yaml_says_pay_consumes(ledger):
    consumed = {event for topic in catalog().topics_consumed_by("pay") for event in topic.events}
    handled = set(saga_handlers(ledger, (0.0, 0.0), asyncio.Event()))
    assert handled <= consumed and {"PaymentRequested", "OrderRejected"} <= handled
