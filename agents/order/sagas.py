"""The sagas as an operator sees them (GET /sagas): how many orders stand in each status, and the unfinished ones,
oldest first, each with how long it has been open, its last event, its next deadline and whether it stalled.
Pure functions. Each order worker answers for its own partitions (`share_of`), and a page is merged from every
worker's share (`page_of`), so a page costs its size, not the table's."""
from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

from agents.events import MAX_ORDER_ID
from agents.order.lifecycle import OrderRecord, OrderStatus, is_terminal
from agents.refusal import Refusal

MAX_PAGE_SIZE = 1000
UNFINISHED = tuple(s.value for s in OrderStatus if not is_terminal(s))
NO_STATUS = "Unknown"  # a record whose events so far said no status (the order's placement has not come)


class BadSagaQuery(Refusal):
    """A listing of the sagas asked for with filters or a page that cannot be."""


@dataclass(frozen=True)
class SagaQuery:
    """Which unfinished sagas to list: of one status, open longer than so many seconds, and which page."""
    status: str | None = None
    older_than_s: float = 0.0
    page: int = 0
    size: int = 20

    def to_params(self) -> dict[str, str]:
        """The query as another worker is asked it."""
        params = {"page": str(self.page), "size": str(self.size), "olderThanS": str(self.older_than_s)}
        return {**params, "status": self.status} if self.status else params


def parse_query(query: Mapping[str, str]) -> SagaQuery:
    status = query.get("status") or None
    if status is not None and status not in UNFINISHED:
        raise BadSagaQuery(f"'status' must be one of the statuses of an unfinished saga: {', '.join(UNFINISHED)}")
    try:
        older_than_s = float(query.get("olderThanS", 0))
        page, size = int(query.get("page", 0)), int(query.get("size", 20))
    except ValueError:
        raise BadSagaQuery("'olderThanS' must be a number of seconds, 'page' and 'size' whole numbers") from None
    if not 0 <= older_than_s <= 10**9:
        raise BadSagaQuery("'olderThanS' must be from 0 to 1000000000 seconds")
    if not 0 <= page <= MAX_ORDER_ID or not 1 <= size <= MAX_PAGE_SIZE:
        raise BadSagaQuery(f"'page' must be from 0 to {MAX_ORDER_ID} and 'size' between 1 and {MAX_PAGE_SIZE}")
    return SagaQuery(status, older_than_s, page, size)


def opened_at(order: OrderRecord) -> str:
    """When the saga began: its placement, or for a record that has not seen it, its first step."""
    return order.placed_at or next((step.at for step in order.history), order.updated_at or "")


def open_seconds(order: OrderRecord, now: float) -> float:
    began = opened_at(order)
    return max(0.0, now - datetime.fromisoformat(began).timestamp()) if began else 0.0


def is_unfinished(order: OrderRecord) -> bool:
    return order.status is None or not is_terminal(OrderStatus(order.status))


def oldest_first(order: OrderRecord) -> tuple[str, int]:
    return opened_at(order), order.order_id or 0


def listed(order: OrderRecord, query: SagaQuery, now: float) -> bool:
    """Whether an order is one of the sagas the query lists."""
    return is_unfinished(order) and (query.status is None or order.status == query.status) \
        and open_seconds(order, now) >= query.older_than_s


@dataclass(frozen=True)
class Share:
    """One worker's part of the answer: its orders in each status, its oldest sagas listed (up to the end of the
    page asked for) and how many it lists in all."""
    counts: dict[str, int]
    oldest: list[OrderRecord]
    listed: int

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "rows": [order.to_json() for order in self.oldest], "total": self.listed}

    @classmethod
    def from_json(cls, share: Mapping[str, Any]) -> Share:
        return cls(dict(share["counts"]), [OrderRecord.from_json(row) for row in share["rows"]], share["total"])


def share_of(orders: Iterable[OrderRecord], query: SagaQuery, now: float) -> Share:
    counts: Counter[str] = Counter()
    found = 0

    def listing() -> Iterator[OrderRecord]:
        nonlocal found
        for order in orders:
            counts[order.status or NO_STATUS] += 1
            if listed(order, query, now):
                found += 1
                yield order
    oldest = heapq.nsmallest((query.page + 1) * query.size, listing(), key=oldest_first)
    return Share(dict(counts), oldest, found)


def summary(order: OrderRecord, now: float) -> dict[str, Any]:
    """One unfinished saga as the operator sees it."""
    last = order.history[-1] if order.history else None
    due = order.deadline
    return {
        "orderId": order.order_id, "status": order.status or NO_STATUS, "openedAt": opened_at(order) or None,
        "openS": round(open_seconds(order, now), 1),
        "lastEvent": last.to_json() if last else None,
        "next": None if due is None else {
            "at": datetime.fromtimestamp(due.at, timezone.utc).isoformat(timespec="milliseconds"),
            "then": due.then, "attempt": due.attempt, "overdue": due.at <= now},
        "stalled": any(step.event == "OrderStalled" for step in order.history),
        "story": [step.to_json() for step in order.history],
    }


def page_of(shares: Sequence[Share], query: SagaQuery, now: float) -> dict[str, Any]:
    """The counts over every worker, and one page of the sagas listed, oldest first."""
    counts: Counter[str] = Counter()
    for share in shares:
        counts.update(share.counts)
    total = sum(share.listed for share in shares)
    start = query.page * query.size
    merged = heapq.merge(*(share.oldest for share in shares), key=oldest_first)
    chunk = list(itertools.islice(merged, start, start + query.size)) if start < total else []
    return {
        "counts": dict(sorted(counts.items())),
        "unfinished": [summary(order, now) for order in chunk],
        "page": {"size": query.size, "totalElements": total, "totalPages": -(-total // query.size),
                 "number": query.page},
    }
