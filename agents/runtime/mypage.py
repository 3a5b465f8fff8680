"""The Mypage worker: folds every event it consumes into the `mypages` table (RocksDB + changelog)."""
from __future__ import annotations

from agents.mypage.projection import project
from agents.runtime.context_app import ContextApp
from agents.settings import Settings


class MypageAgents:
    """The Mypage context on Kafka, built from the settings: one table, the fold of every event it reads."""

    def __init__(self, settings: Settings) -> None:
        self.context_app = ContextApp("mypage", settings)
        self.mypages = self.context_app.table()
        self.context_app.fold_into(self.mypages, project)
