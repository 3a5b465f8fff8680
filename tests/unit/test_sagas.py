"""The operators' listing of the sagas: which orders it counts and lists, in which order, and how a page is merged
from every order worker's share."""
import random
from datetime import datetime

import pytest

from agents.events import make_event
from agents.order.deadline import fold
from agents.order.lifecycle import OrderRecord
from agents.order.sagas import BadSagaQuery, SagaQuery, Share, page_of, parse_query, share_of, summary

NOW = datetime.fromisoformat("2026-01-01T00:10:00+00:00").timestamp()


def at(minute: int, second: int = 0) -> str:
    return f"2026-01-01T00:{minute:02}:{second:02}.000+00:00"


def order(order_id: int, *types: str, placed: str = at(0)) -> OrderRecord:
    """An order's record after these events, the first (its placement) at `placed`, one a second after another."""
    fields = {"OrderPlaced": dict(item="cake", qty=1, price=25000), "PayApproved": dict(paymentId=1, price=25000),
              "OrderCancelled": dict(reason="saga deadline passed"), "PayCanceled": dict(paymentId=2, price=25000),
              "OrderStalled": dict(status="Cancelling", attempt=0, reason="stalled"),
              "BakeryConfirmed": dict(bakeryId="b")}
    record, began = None, datetime.fromisoformat(placed).timestamp()
    for n, event_type in enumerate(("OrderPlaced", *types)):
        event = make_event(event_type, correlation_id="c", orderId=order_id, **fields[event_type])
        event["occurredAt"] = datetime.fromtimestamp(began + n, datetime.fromisoformat(placed).tzinfo).isoformat(
            timespec="milliseconds")
        record = fold(record, event, deadline_s=300, repair_s=60)
    return record


def test_a_query_names_an_unfinished_status_an_age_and_a_page():
    assert parse_query({"status": "Cancelling", "olderThanS": "60", "page": "1", "size": "5"}) == \
        SagaQuery("Cancelling", 60.0, 1, 5)
    assert parse_query({}) == SagaQuery()


@pytest.mark.parametrize("query, says", [
    ({"status": "Confirmed"}, "unfinished"), ({"status": "Baked"}, "unfinished"), ({"olderThanS": "soon"}, "number"),
    ({"olderThanS": "-1"}, "olderThanS"), ({"size": "0"}, "size"), ({"page": "-1"}, "page"),
])
def test_a_query_that_cannot_be_is_refused_naming_why(query, says):
    with pytest.raises(BadSagaQuery, match=says):
        parse_query(query)


def test_every_order_is_counted_by_its_status_but_only_unfinished_ones_are_listed():
    orders = [order(1), order(2, "PayApproved"), order(3, "PayApproved", "BakeryConfirmed"),
              order(4, "PayApproved", "OrderCancelled")]
    share = share_of(orders, SagaQuery(), NOW)
    assert share.counts == {"Ordered": 1, "Paid": 1, "Confirmed": 1, "Cancelling": 1}
    assert [o.order_id for o in share.oldest] == [1, 2, 4] and share.listed == 3


def test_the_listing_filters_by_status_and_by_age():
    orders = [order(1, "PayApproved", placed=at(0)), order(2, "PayApproved", placed=at(9, 30)),
              order(3, "OrderCancelled", placed=at(1))]
    assert [o.order_id for o in share_of(orders, SagaQuery(status="Paid"), NOW).oldest] == [1, 2]
    assert [o.order_id for o in share_of(orders, SagaQuery(older_than_s=60), NOW).oldest] == [1, 3]


def test_the_oldest_sagas_come_first_whatever_their_numbers():
    orders = [order(101, placed=at(3)), order(2, placed=at(1)), order(7, placed=at(2))]
    assert [o.order_id for o in share_of(orders, SagaQuery(), NOW).oldest] == [2, 7, 101]


@pytest.mark.parametrize("page, size", [(0, 1), (0, 3), (1, 3), (2, 4), (5, 2), (0, 50)])
def test_a_page_merged_from_each_workers_share_is_the_page_of_all_sagas(page, size):
    rng = random.Random(7)
    orders = [order(i, placed=at(rng.randrange(10), rng.randrange(60))) for i in range(1, 31)]
    workers = [orders[0:13], orders[13:14], [], orders[14:30]]
    query = SagaQuery(page=page, size=size)
    merged = page_of([Share.from_json(share_of(mine, query, NOW).to_json()) for mine in workers], query, NOW)
    alone = page_of([share_of(orders, query, NOW)], query, NOW)
    assert merged == alone and merged["page"]["totalElements"] == 30 and merged["counts"] == {"Ordered": 30}


def test_a_saga_shows_how_long_it_is_open_its_last_event_and_its_next_deadline():
    shown = summary(order(5, "PayApproved", placed=at(0)), NOW)
    assert (shown["orderId"], shown["status"], shown["openS"]) == (5, "Paid", 600.0)
    assert shown["lastEvent"]["event"] == "PayApproved" and [s["event"] for s in shown["story"]] == [
        "OrderPlaced", "PayApproved"]
    assert shown["next"] == {"at": at(5), "then": "cancel", "attempt": 0, "overdue": True}
    assert shown["stalled"] is False


def test_a_saga_announced_stalled_says_so_with_its_repair_due():
    shown = summary(order(6, "PayApproved", "OrderCancelled", "OrderStalled", placed=at(0)), NOW)
    assert shown["stalled"] is True and shown["status"] == "Cancelling"
    assert (shown["next"]["then"], shown["next"]["attempt"]) == ("repair", 1)


def test_a_record_that_has_not_seen_its_placement_is_listed_by_its_first_step():
    record = OrderRecord.from_json({"orderId": 8, "history": [{"event": "PayApproved", "at": at(2)}]})
    shown = summary(record, NOW)
    assert (shown["status"], shown["openedAt"], shown["openS"]) == ("Unknown", at(2), 480.0)
