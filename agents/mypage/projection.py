"""How events become a Mypage row, and how rows are shown (the seed's HAL shape). Pure functions."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from agents.order.lifecycle import apply_event

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
    shown["_links"] = {"self": {"href": f"{base_url}/mypages/{row.get('orderId')}"}}
    return shown


def page_of(rows: Sequence[Mapping[str, Any]], page: int, size: int, base_url: str) -> dict[str, Any]:
    """One page of rows, newest order first, in Spring Data REST's HAL shape as the seed served it."""
    ordered = sorted(rows, key=lambda r: r.get("orderId") or 0, reverse=True)
    chunk = ordered[page * size : (page + 1) * size]
    total = len(ordered)
    return {
        "_embedded": {"mypages": [row_view(r, base_url) for r in chunk]},
        "_links": {"self": {"href": f"{base_url}/mypages?page={page}&size={size}"}},
        "page": {"size": size, "totalElements": total, "totalPages": -(-total // size), "number": page},
    }
