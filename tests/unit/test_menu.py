"""The order edge's intake rules."""
import pytest

from agents.order.menu import MAX_QTY, InvalidOrder, OrderRequest, parse_order

MENU = {"cake": 25000, "bread": 3000}


def test_the_price_is_the_item_s_price_times_the_qty():
    assert parse_order({"item": "cake", "qty": 1}, MENU) == OrderRequest("cake", 1, 25000)
    assert parse_order({"item": "bread", "qty": 3}, MENU).price == 9000


def test_qty_defaults_to_one():
    assert parse_order({"item": "cake"}, MENU).qty == 1


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"item": "cake", "qty": 0}, "between 1 and"),
        ({"item": "cake", "qty": MAX_QTY + 1}, "between 1 and"),
        ({"item": "cake", "qty": -1}, "between 1 and"),
        ({"item": "cake", "qty": "2"}, "whole number"),
        ({"item": "cake", "qty": 1.5}, "whole number"),
        ({"item": "cake", "qty": True}, "whole number"),
        ({"item": "pizza", "qty": 1}, "not on the menu"),
        ({"qty": 1}, "'item'"),
        ({"item": 3}, "'item'"),
        ([1, 2], "JSON object"),
        ("cake", "JSON object"),
        (None, "JSON object"),
    ],
)
def test_bad_orders_are_refused_with_the_reason(body, problem):
    with pytest.raises(InvalidOrder, match=problem):
        parse_order(body, MENU)
