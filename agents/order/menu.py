"""What can be ordered and what it costs: the rules the order edge checks every request against."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from agents.refusal import Refusal

MAX_QTY = 100


class InvalidOrder(Refusal):
    """An order request a customer must correct; the message says what is wrong."""


@dataclass(frozen=True)
class OrderRequest:
    item: str
    qty: int
    price: int


def parse_order(body: Any, menu: Mapping[str, int]) -> OrderRequest:
    """Decide whether `body` is an order bread accepts, and at what price."""
    if not isinstance(body, Mapping):
        raise InvalidOrder("the body must be a JSON object like {\"item\": \"cake\", \"qty\": 1}")
    item, qty = body.get("item"), body.get("qty", 1)
    if not isinstance(item, str) or not item:
        raise InvalidOrder("'item' must be the name of a menu item")
    if item not in menu:
        raise InvalidOrder(f"'{item}' is not on the menu; choose one of {', '.join(sorted(menu))}")
    if not isinstance(qty, int) or isinstance(qty, bool):
        raise InvalidOrder("'qty' must be a whole number")
    if not 1 <= qty <= MAX_QTY:
        raise InvalidOrder(f"'qty' must be between 1 and {MAX_QTY}")
    return OrderRequest(item=item, qty=qty, price=menu[item] * qty)
