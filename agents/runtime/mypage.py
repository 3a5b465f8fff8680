"""The Mypage worker: folds every event it consumes into the `mypages` table (RocksDB + changelog)."""
from __future__ import annotations

from agents.mypage.projection import project
from agents.runtime.worker import Worker
from agents.settings import Settings


class MypageAgents:
    """The Mypage context on Kafka, built from the settings: one table, the fold of every event it reads."""

    def __init__(self, settings: Settings) -> None:
        self.worker = Worker("mypage", settings)
        self.mypages = self.worker.table()
        self.worker.fold_into(self.mypages, project)
