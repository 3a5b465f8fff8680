"""Mypage's rows: what it keeps of each order, and how rows are shown (the seed's HAL shape). Pure functions."""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

from agents.order.lifecycle import ORDER_FIELDS, OrderRecord, Step, may_cancel

ROW_FIELDS = ("orderId", "item", "qty", "price", "action", "paymentId", "bakeryId", "status")


@dataclass(frozen=True)
class MypageRow:
    """What Mypage keeps of one order: what it shows, and the story it told. Its JSON (`to_json`) is the table's
    row; rows written before a field existed still read (`from_json`)."""
    order_id: int | None = None
    item: str | None = None
    qty: int | None = None
    price: int | None = None
    action: str | None = None
    payment_id: int | None = None
    bakery_id: str | None = None
    status: str | None = None
    reason: str | None = None
    customer_id: str | None = None
    placed_at: str | None = None
    history: tuple[Step, ...] = ()

    def to_json(self) -> dict[str, Any]:
        row = {name: getattr(self, attribute) for name, attribute in FIELDS.items()
               if getattr(self, attribute) is not None}
        row["history"] = [step.to_json() for step in self.history]
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> MypageRow:
        return cls(**{attribute: row.get(name) for name, attribute in FIELDS.items()},
                   history=tuple(Step.from_json(step) for step in row.get("history", ())))


FIELDS = {**{name: ORDER_FIELDS.get(name, name) for name in ROW_FIELDS},
          "reason": "reason", "customerId": "customer_id", "placedAt": "placed_at"}


def shown_row(row: MypageRow | None, order: OrderRecord) -> MypageRow:
    """Mypage's row of an order, from the order as the order context records it: what Mypage shows of it. A
    step of the story that Mypage told and the order's record lacks (a record kept before records told the
    story) stays in it."""
    steps = {(step.event, step.at) for step in order.history}
    told = [step for step in (row.history if row else ()) if (step.event, step.at) not in steps]
    return MypageRow(**{attribute: getattr(order, attribute) for attribute in FIELDS.values()},
                     history=tuple(sorted([*order.history, *told], key=lambda step: step.at)))


def row_view(row: MypageRow, base_url: str) -> dict[str, Any]:
    shown: dict[str, Any] = {name: getattr(row, FIELDS[name]) for name in ROW_FIELDS}
    for optional in ("reason", "customerId", "placedAt"):
        value = getattr(row, FIELDS[optional])
        if value:
            shown[optional] = value
    shown["history"] = [step.to_json() for step in row.history]
    shown["cancellable"] = may_cancel(row.status)
    shown["_links"] = {"self": {"href": f"{base_url}/mypages/{row.order_id}"}}
    return shown


Share = tuple[list[MypageRow], int]  # one worker's newest rows (newest first), and how many it has


def newest_first(row: MypageRow) -> tuple[str, int]:
    """Rows ordered by when their order was placed (order numbers come in blocks per order edge, so two edges'
    numbers say nothing of which order came first), then by number; a row without its placement time (one
    kept before rows held it) by the first step of its story."""
    placed = row.placed_at or next((step.at for step in row.history), "")
    return placed, row.order_id or 0


def share_of(rows: Iterable[MypageRow], wanted: int) -> Share:
    """What one worker contributes to a page: its `wanted` newest rows and its count. No page needs more of
    any worker than all rows up to its end, so a page costs its size, not the table's."""
    counted = 0

    def counting() -> Iterator[MypageRow]:
        nonlocal counted
        for row in rows:
            counted += 1
            yield row
    return heapq.nlargest(wanted, counting(), key=newest_first), counted


def page_of(shares: Sequence[Share], page: int, size: int, base_url: str) -> dict[str, Any]:
    """One page of rows from every worker's share, newest order first, in Spring Data REST's HAL shape as the
    seed served it."""
    total = sum(count for _, count in shares)
    start = page * size
    merged = heapq.merge(*(rows for rows, _ in shares), key=newest_first, reverse=True)
    chunk = list(itertools.islice(merged, start, start + size)) if start < total else []  # past the end: empty
    return {
        "_embedded": {"mypages": [row_view(r, base_url) for r in chunk]},
        "_links": {"self": {"href": f"{base_url}/mypages?page={page}&size={size}"}},
        "page": {"size": size, "totalElements": total, "totalPages": -(-total // size), "number": page},
    }
