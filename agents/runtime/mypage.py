"""The Mypage worker: folds every event it consumes into the `mypages` table (RocksDB + changelog)."""
from agents.mypage.projection import project
from agents.runtime.worker import Worker

worker = Worker("mypage")
mypages = worker.table()
worker.fold_into(mypages, project)
