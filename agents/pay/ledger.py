"""The payment ledger in SQL (SQLite by default) with a transactional outbox.

A payment row and the event announcing it are written in one transaction; the relay publishes the outbox
to Kafka afterwards. A crash in between loses no event; a retried publish carries the same event id, which
consumers drop. SQLite calls run on one dedicated thread so the event loop never blocks on disk.
"""
from __future__ import annotations

import asyncio
import functools
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar, cast

from agents.events import encode, key_of, make_event
from agents.idempotency import KeyUsedBefore
from agents.pay.payments import (
    APPLY,
    CANCEL,
    DECLINE,
    EVENT_OF_ACTION,
    OrderBooks,
    PaymentRequest,
    answered_by,
    decline_reason,
    entry_for,
    refund_for,
)
from agents.refusal import Refusal

T = TypeVar("T")
MAX_GROUP = 256  # ledger changes committed in one transaction at most

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    amount INTEGER NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    reason TEXT,        -- why a person asked for this refund
    requested_by TEXT,  -- who asked, when the gateway named them
    UNIQUE (order_id, action)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,
    trace TEXT          -- the trace (W3C traceparent) of the request that wrote it, when tracing
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (published, id);
CREATE INDEX IF NOT EXISTS outbox_by_key ON outbox (key);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    order_id INTEGER NOT NULL,
    action TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS confirmed_orders (
    order_id INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS voided_orders (
    order_id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    voided_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""
# Columns added since the first ledgers were written: added to an older ledger when it is opened.
ADDED_COLUMNS = {"payments": ("reason TEXT", "requested_by TEXT"), "outbox": ("trace TEXT",)}


STATUS_OF_ACTION = {APPLY: "Approved", CANCEL: "Refunded", DECLINE: "Declined"}


@dataclass(frozen=True)
class Payment:
    id: int
    order_id: int
    action: str
    amount: int
    created: bool  # False when the request repeated one already recorded
    reason: str | None = None
    requested_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        shown = {"id": self.id, "orderId": self.order_id, "action": self.action, "price": self.amount,
                 "status": STATUS_OF_ACTION[self.action]}
        if self.reason:
            shown["reason"] = self.reason
        if self.requested_by:
            shown["requestedBy"] = self.requested_by
        return shown


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    trace: str | None = None  # the traceparent of what wrote it: its event continues that trace


class Ledger:
    def __init__(self, path: Path, topic_of: Callable[[str], str], limit: int,
                 trace_now: Callable[[], str | None] = lambda: None) -> None:
        """`trace_now` is the caller's current trace (a W3C traceparent), or None: the events a change puts in
        the outbox carry it on, though the relay sends them later."""
        self._path = path
        self._trace_now = trace_now
        self._outbox_trace: str | None = None
        self._limit = limit
        self._topic_of = topic_of
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._db: sqlite3.Connection | None = None
        self._queued: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future]] = []
        self._committer: asyncio.Task | None = None

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise RuntimeError("the ledger is not open")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, db)

    async def open(self) -> None:
        def connect(_: Any) -> sqlite3.Connection:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in present:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(self._thread, connect, None)

    async def close(self) -> None:
        if self._committer is not None:
            await self._committer
        if self._db is not None:
            await self._call(lambda db: db.close())
        self._thread.shutdown(wait=True)

    async def record(self, request: PaymentRequest, correlation_id: str) -> Payment:
        """Charge or refund once per order and action; a repeat returns the payment already recorded."""
        return await self._in_group(self._traced(lambda db: self._record(db, request, correlation_id)))

    async def _in_group(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in the next group transaction: changes that arrive while a commit is on disk wait and
        are committed together (group commit), one sync to disk for many, each still all-or-nothing (a
        savepoint each). A refusal undoes only its own change."""
        future = asyncio.get_running_loop().create_future()
        self._queued.append((change, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await future

    async def _commit_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
            changes = [change for change, _ in batch]
            try:
                outcomes = await self._call(functools.partial(self._commit_group, changes=changes))
            except Exception as exc:  # noqa: BLE001 - the whole transaction failed: every waiter hears why
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes):
                if future.done():  # its caller went away
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    @staticmethod
    def _commit_group(db: sqlite3.Connection, changes: list[Callable[[sqlite3.Connection], Any]]) -> list:
        outcomes: list[Any] = []
        with db:  # commits on leaving, rolls back on an exception
            db.execute("BEGIN IMMEDIATE")
            for change in changes:
                db.execute("SAVEPOINT change")
                try:
                    outcomes.append(change(db))
                except Refusal as refused:
                    db.execute("ROLLBACK TO change")
                    outcomes.append(refused)
                db.execute("RELEASE change")
        return outcomes

    def _record(self, db: sqlite3.Connection, request: PaymentRequest, correlation_id: str) -> Payment:
        """One payment request; with an Idempotency-Key, the key stays bound to that request."""
        key = request.idempotency_key
        if key:
            bound = db.execute("SELECT order_id, action FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
            if bound and tuple(bound) != (request.order_id, request.action):
                raise KeyUsedBefore(f"the Idempotency-Key {key!r} was used for another payment request")
            if not bound:
                db.execute("INSERT INTO idempotency_keys (key, order_id, action) VALUES (?, ?, ?)",
                           (key, request.order_id, request.action))
        return self._record_once(db, request, correlation_id)

    def _record_once(self, db: sqlite3.Connection, request: PaymentRequest, correlation_id: str) -> Payment:
        # A repeated request gets the answer the first one got: the charge, the refund, or the decline.
        for action in answered_by(request.action):
            existing = db.execute(
                "SELECT id, amount, reason, requested_by FROM payments WHERE order_id = ? AND action = ?",
                (request.order_id, action),
            ).fetchone()
            if existing:
                reason = decline_reason(existing[1], self._limit) if action == DECLINE else existing[2]
                return Payment(existing[0], request.order_id, action, existing[1], created=False, reason=reason,
                               requested_by=existing[3])
        order_id = request.order_id
        voided = db.execute("SELECT reason FROM voided_orders WHERE order_id = ?", (order_id,)).fetchone()
        books = OrderBooks(self._charged(db, order_id), self._confirmed(db, order_id), voided[0] if voided else None)
        entry = entry_for(request, books, self._limit)
        by = request.requested_by.name if request.requested_by and entry.action == CANCEL else None
        return self._insert(db, order_id, entry.action, entry.amount, correlation_id, reason=entry.reason,
                            requested_by=by)

    @staticmethod
    def _confirmed(db: sqlite3.Connection, order_id: int) -> bool:
        return db.execute("SELECT 1 FROM confirmed_orders WHERE order_id = ?", (order_id,)).fetchone() is not None

    @staticmethod
    def _charged(db: sqlite3.Connection, order_id: int) -> int | None:
        row = db.execute("SELECT amount FROM payments WHERE order_id = ? AND action = ?", (order_id, APPLY)).fetchone()
        return row[0] if row else None

    def _insert(self, db: sqlite3.Connection, order_id: int, action: str, amount: int, correlation_id: str,
                reason: str | None = None, requested_by: str | None = None) -> Payment:
        """A payment row and the event announcing it, inside the caller's transaction. A decline's reason is
        pay's own; a refund's, the person's who asked for it."""
        payment_id = cast(int, db.execute(  # an INSERT's row id, never None
            "INSERT INTO payments (order_id, action, amount, correlation_id, reason, requested_by) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (order_id, action, amount, correlation_id, reason if action == CANCEL else None, requested_by),
        ).lastrowid)
        if action == DECLINE:
            event = make_event("PayRejected", correlation_id=correlation_id, orderId=order_id, price=amount,
                               reason=reason)
        else:
            asked = {"reason": reason} if reason else {}
            if requested_by:
                asked["refundedBy"] = requested_by
            event = make_event(EVENT_OF_ACTION[action], correlation_id=correlation_id,
                               orderId=order_id, paymentId=payment_id, price=amount, **asked)
        self._to_outbox(db, event)
        return Payment(payment_id, order_id, action, amount, created=True, reason=reason, requested_by=requested_by)

    def _traced(self, change: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
        """`change`, run in the ledger's thread (one change at a time) as part of the caller's trace."""
        trace = self._trace_now()
        if trace is None:
            return change

        def traced(db: sqlite3.Connection) -> T:
            self._outbox_trace = trace
            try:
                return change(db)
            finally:
                self._outbox_trace = None
        return traced

    def _to_outbox(self, db: sqlite3.Connection, event: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO outbox (topic, key, value, trace) VALUES (?, ?, ?, ?)",
            (self._topic_of(event["type"]), key_of(event), encode(event), self._outbox_trace),
        )

    async def void(self, order_id: int, reason: str, correlation_id: str) -> str | None:
        """The order was rejected or cancelled: refund what was charged, refuse any later charge.

        Returns the event announcing it (PayCanceled for a refund, PayVoided when nothing was charged), or
        None when the order was voided before: voiding is idempotent.
        """
        return await self._in_group(self._traced(lambda db: self._void(db, order_id, reason, correlation_id)))

    def _void(self, db: sqlite3.Connection, order_id: int, reason: str, correlation_id: str) -> str | None:
        if not db.execute("INSERT OR IGNORE INTO voided_orders (order_id, reason) VALUES (?, ?)",
                          (order_id, reason)).rowcount:
            return None
        charged = self._charged(db, order_id)
        refunded = db.execute(
            "SELECT 1 FROM payments WHERE order_id = ? AND action = ?", (order_id, CANCEL)).fetchone()
        if charged is not None and not refunded:
            self._insert(db, order_id, CANCEL, refund_for(charged, order_id), correlation_id)
            return "PayCanceled"
        if charged is None:
            self._to_outbox(db, make_event("PayVoided", correlation_id=correlation_id, orderId=order_id,
                                           reason=reason))
            return "PayVoided"
        return None

    async def bakery_confirmed(self, order_id: int) -> None:
        """The bakery confirmed the order: from now on only an admin refunds it, with a reason."""
        await self._in_group(lambda db: db.execute(
            "INSERT OR IGNORE INTO confirmed_orders (order_id) VALUES (?)", (order_id,)))

    async def is_bakery_confirmed(self, order_id: int) -> bool:
        return await self._call(lambda db: self._confirmed(db, order_id))

    async def announce_again(self, order_id: int) -> int:
        """Put every event the ledger announced about an order back in line for the relay (the same events,
        ids included): its saga stalled, and one of them may be what was lost. Returns how many."""
        key = str(order_id).encode()  # the outbox's Kafka key: the order id as text

        def again(db: sqlite3.Connection) -> int:
            return db.execute("UPDATE outbox SET published = 0 WHERE key = ?", (key,)).rowcount

        return await self._in_group(again)

    async def find(self, order_id: int) -> list[Payment]:
        rows = await self._call(lambda db: db.execute(
            "SELECT id, action, amount, reason, requested_by FROM payments WHERE order_id = ? ORDER BY id",
            (order_id,)).fetchall())
        return [Payment(r[0], order_id, r[1], r[2], created=False, reason=r[3], requested_by=r[4]) for r in rows]

    async def unpublished(self, limit: int = 500) -> list[OutboxEntry]:
        rows = await self._call(lambda db: db.execute(
            "SELECT id, topic, key, value, trace FROM outbox WHERE published = 0 ORDER BY id LIMIT ?",
            (limit,)).fetchall())
        return [OutboxEntry(*row) for row in rows]

    async def mark_published(self, ids: list[int]) -> None:
        """Note these outbox entries published, in the next group transaction with whatever else is recorded then
        (one sync to disk for both)."""
        await self._in_group(lambda db: db.executemany("UPDATE outbox SET published = 1 WHERE id = ?",
                                                       [(i,) for i in ids]))
