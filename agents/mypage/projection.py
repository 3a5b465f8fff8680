"""How events become a Mypage row, and how rows are shown (the seed's HAL shape). Pure functions."""
from __future__ import annotations

import heapq
import itertools
from typing import Any, Iterable, Iterator, Mapping, Sequence

from agents.order.lifecycle import apply_event, may_cancel

# The payment action a row shows, in pay's own words.
ACTION_OF = {"PayApproved": "apply", "PayCanceled": "cancel", "PayRejected": "decline", "PayVoided": "void"}
ROW_FIELDS = ("orderId", "item", "qty", "price", "action", "paymentId", "bakeryId", "status")


def project(row: Mapping[str, Any] | None, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fold one event into a Mypage row; None when it was seen before."""
    updated = apply_event(row, event)
    if updated is None:
        return None
    if event["type"] in ACTION_OF:
        updated["action"] = ACTION_OF[event["type"]]
    step = {"event": event["type"], "at": event["occurredAt"]}
    if "reason" in event:
        step["reason"] = event["reason"]
    if "refundedBy" in event:
        step["by"] = event["refundedBy"]
    # Events arrive in topic order, not in the order they happened: the story is told by their own times.
    updated["history"] = sorted([*updated.get("history", []), step], key=lambda s: s["at"])
    return updated


def row_view(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    shown = {field: row.get(field) for field in ROW_FIELDS}
    for optional in ("reason", "customerId"):
        if row.get(optional):
            shown[optional] = row[optional]
    shown["history"] = row.get("history", [])
    shown["cancellable"] = may_cancel(row.get("status"))
    shown["_links"] = {"self": {"href": f"{base_url}/mypages/{row.get('orderId')}"}}
    return shown


Share = tuple[list[dict[str, Any]], int]  # one worker's newest rows (newest first), and how many it has


def newest_first(row: Mapping[str, Any]) -> int:
    return row.get("orderId") or 0


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
