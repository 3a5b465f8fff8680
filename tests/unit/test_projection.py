"""Mypage rows: each order as the order context records it (its fold of the events), shown in the seed's HAL
shape, paged."""
import random

import pytest

from agents.events import make_event
from agents.mypage.projection import FIELDS, MypageRow, page_of, row_view, share_of, shown_row
from agents.order.lifecycle import OrderRecord, apply_event


def fold(events):
    """Mypage's row after the order context folded these events, each change followed as it came."""
    order = row = None
    for event in events:
        order = apply_event(order, event) or order
        row = shown_row(row, order)
    return row


def test_a_confirmed_order_shows_its_whole_story():
    row = fold([
        make_event("OrderPlaced", correlation_id="c", orderId=3, item="cake", qty=1, price=25000),
        make_event("PayApproved", correlation_id="c", orderId=3, paymentId=11, price=25000),
        make_event("BakeryTicketOpened", correlation_id="c", orderId=3, bakeryId="b3"),
        make_event("BakeryConfirmed", correlation_id="c", orderId=3, bakeryId="b3"),
    ])
    shown = row_view(row, "http://gw")
    assert {k: shown[k] for k in ("orderId", "item", "qty", "price", "action", "paymentId", "bakeryId", "status")} == {
        "orderId": 3, "item": "cake", "qty": 1, "price": 25000, "action": "apply", "paymentId": 11,
        "bakeryId": "b3", "status": "Confirmed",
    }
    assert [step["event"] for step in shown["history"]] == [
        "OrderPlaced", "PayApproved", "BakeryTicketOpened", "BakeryConfirmed"]
    assert shown["_links"]["self"]["href"] == "http://gw/mypages/3"
    assert shown["cancellable"] is False  # the bakery confirmed it


def test_only_an_order_on_its_way_offers_a_cancel():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=5, item="cake", qty=1, price=25000)
    paid = make_event("PayApproved", correlation_id="c", orderId=5, paymentId=1, price=25000)
    voided = make_event("PayCanceled", correlation_id="c", orderId=5, paymentId=2, price=25000)
    assert row_view(fold([placed]), "http://gw")["cancellable"] is True
    assert row_view(fold([placed, paid]), "http://gw")["cancellable"] is True
    assert row_view(fold([placed, paid, voided]), "http://gw")["cancellable"] is False


def test_a_refund_shows_as_the_cancel_action():
    row = fold([
        make_event("OrderPlaced", correlation_id="c", orderId=4, item="cake", qty=1, price=25000),
        make_event("OrderRejected", correlation_id="c", orderId=4, reason="payment unavailable: timeout"),
        make_event("PayApproved", correlation_id="c", orderId=4, paymentId=1, price=25000),
        make_event("PayCanceled", correlation_id="c", orderId=4, paymentId=2, price=25000),
    ])
    assert (row.status, row.action, row.reason) == ("Rejected", "cancel", "payment unavailable: timeout")


def test_the_story_is_told_in_the_order_things_happened_not_the_order_they_arrived():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=6, item="cake", qty=1, price=1)
    paid = make_event("PayApproved", correlation_id="c", orderId=6, paymentId=1, price=1)
    opened = make_event("BakeryTicketOpened", correlation_id="c", orderId=6, bakeryId="b")
    placed["occurredAt"], paid["occurredAt"], opened["occurredAt"] = "2026-01-01T00:00:00.001+00:00", \
        "2026-01-01T00:00:00.002+00:00", "2026-01-01T00:00:00.003+00:00"
    row = fold([opened, placed, paid])
    assert [s.event for s in row.history] == ["OrderPlaced", "PayApproved", "BakeryTicketOpened"]
    assert row.status == "Confirming"


def test_a_duplicate_event_adds_nothing_to_the_story():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=5, item="cake", qty=1, price=25000)
    assert fold([placed, placed]) == fold([placed])
    assert apply_event(apply_event(None, placed), placed) is None


def test_mypage_keeps_the_story_it_told_before_orders_kept_one():
    placed = make_event("OrderPlaced", correlation_id="c", orderId=5, item="cake", qty=1, price=25000)
    paid = make_event("PayApproved", correlation_id="c", orderId=5, paymentId=1, price=25000)
    placed["occurredAt"], paid["occurredAt"] = "2026-01-01T00:00:00.001+00:00", "2026-01-01T00:00:00.002+00:00"
    told_before = MypageRow.from_json({"orderId": 5, "status": "Ordered",
                                       "history": [{"event": "OrderPlaced", "at": placed["occurredAt"]}]})
    recorded_before = OrderRecord.from_json({k: v for k, v in apply_event(None, placed).to_json().items()
                                             if k not in ("history", "action")})
    row = shown_row(told_before, apply_event(recorded_before, paid))
    assert [step.event for step in row.history] == ["OrderPlaced", "PayApproved"]
    assert row.status == "Paid" and set(row.to_json()) <= {*FIELDS, "history"}  # no bookkeeping of the order's


def test_a_mypage_row_reads_back_from_any_row_ever_kept():
    row = fold([make_event("OrderPlaced", correlation_id="c", orderId=5, item="cake", qty=1, price=25000,
                           customerId="alice")])
    assert MypageRow.from_json(row.to_json()) == row
    assert MypageRow.from_json({"orderId": 5, "status": "Paid"}) == MypageRow(order_id=5, status="Paid")


def test_pages_are_newest_first_in_hal_shape():
    rows = [fold([make_event("OrderPlaced", correlation_id="c", orderId=i, item="cake", qty=1, price=1)])
            for i in range(1, 6)]
    page = page_of([share_of(rows, wanted=4)], page=1, size=2, base_url="http://x")
    assert [r["orderId"] for r in page["_embedded"]["mypages"]] == [3, 2]
    assert page["page"] == {"size": 2, "totalElements": 5, "totalPages": 3, "number": 1}
    assert page["_links"]["self"]["href"] == "http://x/mypages?page=1&size=2"
    assert page_of([], 0, 20, "http://x")["_embedded"]["mypages"] == []
    far = page_of([share_of(rows, wanted=10**19)], page=876311020833844096, size=20, base_url="http://x")
    assert far["_embedded"]["mypages"] == [] and far["page"]["totalElements"] == 5


@pytest.mark.parametrize("page, size", [(0, 1), (0, 3), (1, 3), (2, 4), (5, 2), (0, 50)])
def test_a_page_merged_from_each_workers_share_is_the_page_of_all_rows(page, size):
    rows = [MypageRow(order_id=i, status="Confirmed") for i in random.Random(7).sample(range(1, 100), 30)]
    workers = [rows[0:13], rows[13:14], [], rows[14:30]]
    wanted = (page + 1) * size
    shares = [share_of(mine, wanted) for mine in workers]
    assert all(len(share) <= wanted for share, _ in shares)
    merged = page_of(shares, page, size, "http://x")
    alone = page_of([share_of(rows, len(rows))], page, size, "http://x")
    assert merged == alone and merged["page"]["totalElements"] == 30
    expected = sorted((r.order_id for r in rows), reverse=True)[page * size:(page + 1) * size]
    assert [r["orderId"] for r in merged["_embedded"]["mypages"]] == expected


def test_pages_are_newest_placed_first_whatever_the_numbers_of_the_edges_that_took_them():
    # Edge a numbers from 1, edge b from 101: b's first order came before a's third.
    rows = [MypageRow(order_id=n, status="Paid", placed_at=f"2026-01-01T00:00:0{second}.000+00:00")
            for n, second in ((1, 1), (2, 2), (101, 3), (3, 4))]
    page = page_of([share_of(rows, wanted=4)], page=0, size=4, base_url="http://x")
    assert [r["orderId"] for r in page["_embedded"]["mypages"]] == [3, 101, 2, 1]
    assert page["_embedded"]["mypages"][0]["placedAt"] == "2026-01-01T00:00:04.000+00:00"
