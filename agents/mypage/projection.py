"""Mypage's rows: what it keeps of each order, and how rows are shown (the seed's HAL shape). Pure functions."""
from __future__ import annotations

import heapq
import itertools
from typing import Any, Iterable, Iterator, Mapping, Sequence

from agents.order.lifecycle import may_cancel

Row = dict[str, Any]
ROW_FIELDS = ("orderId", "item", "qty", "price", "action", "paymentId", "bakeryId", "status")
KEPT = (*ROW_FIELDS, "reason", "customerId", "placedAt", "history")


def shown_row(row: Mapping[str, Any] | None, order: Mapping[str, Any]) -> Row:
    """Mypage's row of an order, from the order as the order context records it: what Mypage shows of it. A
    step of the story that Mypage told and the order's record lacks (a record kept before records told the
    story) stays in it."""
    shown = {field: order[field] for field in KEPT if field in order}
    steps = {(step["event"], step["at"]) for step in shown.get("history", [])}
    told = [step for step in (row or {}).get("history", []) if (step["event"], step["at"]) not in steps]
    if told:
        shown["history"] = sorted([*shown.get("history", []), *told], key=lambda step: step["at"])
    return shown


def row_view(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    shown = {field: row.get(field) for field in ROW_FIELDS}
    for optional in ("reason", "customerId", "placedAt"):
        if row.get(optional):
            shown[optional] = row[optional]
    shown["history"] = row.get("history", [])
    shown["cancellable"] = may_cancel(row.get("status"))
    shown["_links"] = {"self": {"href": f"{base_url}/mypages/{row.get('orderId')}"}}
    return shown


Share = tuple[list[dict[str, Any]], int]  # one worker's newest rows (newest first), and how many it has


def newest_first(row: Mapping[str, Any]) -> tuple[str, int]:
    """Rows ordered by when their order was placed (order numbers come in blocks per order edge, so two edges'
    numbers say nothing of which order came first), then by number; a row without its placement time (one
    kept before rows held it) by the first step of its story."""
    placed = row.get("placedAt") or next((step["at"] for step in row.get("history", [])), "")
    return placed, row.get("orderId") or 0


def share_of(rows: Iterable[Mapping[str, Any]], wanted: int) -> Share:
    """What one worker contributes to a page: its `wanted` newest rows and its count. No page needs more of
    any worker than all rows up to its end, so a page costs its size, not the table's."""
    counted = 0

    def counting() -> Iterator[Mapping[str, Any]]:
        nonlocal counted
        for row in rows:
            counted += 1
            yield row
    top = heapq.nlargest(wanted, counting(), key=newest_first)
    return [dict(r) for r in top], counted


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
