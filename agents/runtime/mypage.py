"""The Mypage worker: keeps the `mypages` table (RocksDB + changelog) as the order context records each order,
following the order worker's table on its changelog: one fold of the saga's events, not two."""
from __future__ import annotations

from typing import Any

from agents.mypage.projection import MypageRow, shown_row
from agents.order.lifecycle import OrderRecord
from agents.runtime.context_app import ContextApp
from agents.settings import Settings


class MypageAgents:
    """The Mypage context on Kafka, built from the settings: one table, each order as the order context has it."""

    def __init__(self, settings: Settings) -> None:
        self.context_app = ContextApp("mypage", settings)
        self.mypages = self.context_app.table()
        self.context_app.follow("orders", self.on_order)

    async def on_order(self, order_id: str, order: dict[str, Any] | None) -> None:
        """`order`: the order table's row, None once it was deleted."""
        kept = self.mypages.get(order_id)
        before = MypageRow.from_json(kept) if kept is not None else None
        after = shown_row(before, OrderRecord.from_json(order)) if order is not None else None
        if after != before:
            if after is None:
                del self.mypages[order_id]
            else:
                self.mypages[order_id] = after.to_json()
