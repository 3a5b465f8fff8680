"""The order worker: keeps each order's lifecycle state in the `orders` table, enforces the saga's deadlines,
and places the orders other systems request over Kafka.

Every open order's record holds its deadline, and the worker keeps the open ones in memory (built again from its
table whenever the partitions it holds change). A timer cancels the orders whose deadline has passed
(the baker never answered, or the edge died between placing the order and charging it); the cancellation
then runs as any other: the bakery closes its ticket, pay refunds what it charged, the order ends Cancelled
— or Confirmed, when the bakery confirmed first. An order still open a while after its cancel has stalled:
the timer announces it, and pay and the bakery announce their decisions again (agents/order/deadline.py).

A request over Kafka is placed once: its order number is on record (and acknowledged) before the order is
announced, so a request seen again after a crash continues or repeats that placement, never makes another.
Requests with different ids are placed side by side (agents/runtime/side_by_side.py), as many at once as pay's
bulkhead lets through (twice that: a placement spends half its time on its events); those with one id one after
the other; and a request's offset is committed only once it and every one before it on its partition is placed.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import cast

import aiohttp
from aiokafka.errors import KafkaError

from agents.catalog import catalog
from agents.correlation import current as current_correlation
from agents.events import Event
from agents.order import deadline, intake
from agents.order.lifecycle import OrderRecord, OrderStatus, record_of, saga_seconds
from agents.order.menu import OrderRequest, parse_order
from agents.runtime.context_app import ContextApp
from agents.runtime.metrics import DEADLINES_PASSED, SAGA_SECONDS
from agents.runtime.pay_client import PayClient
from agents.runtime.stalls import Stalls
from agents.settings import Settings

log = logging.getLogger(__name__)


class OrderAgents:
    """The order context on Kafka, built from the settings: its tables, its agents and its deadline timer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context_app = ContextApp("order", settings, service="order-worker")
        self.orders = self.context_app.table("orders")
        self.requests = self.context_app.table("order-requests")
        # The open orders' deadlines, of the partitions this worker held when it last looked.
        self._deadlines: dict[str, deadline.Deadline] = {}
        self._deadlines_of: frozenset | None = None
        self.name = f"order-worker {socket.gethostname()}:{os.getpid()}"
        # Requests whose placement someone waits for (the edge, for an order with an Idempotency-Key).
        self._awaited_placements: dict[str, list[asyncio.Future]] = {}
        # The reminder sent for an order's current deadline, until the agent moves the deadline on.
        self._reminded: dict[str, deadline.Deadline] = {}
        self._pay: PayClient | None = None
        self._stalls = Stalls("order-worker")
        self.context_app.app.task(self._stalls.watch)
        self.numbers = intake.OrderNumbers(self.emit_acknowledged, self.name)
        self.context_app.consume({event: self.on_event for topic in catalog().topics_consumed_by("order")
                             if topic.key == "orderId" for event in topic.events})
        self.context_app.consume_side_by_side(
            {"RequestOrder": self.on_request_order}, self._requests_at_once,
            checks={"RequestOrder": lambda command: parse_order(command, settings.menu)})
        self.context_app.app.timer(interval=settings.saga_sweep_s)(self.enforce_deadlines)
        self.context_app.app.on_before_shutdown.connect(self._close_pay)

    async def on_event(self, event: Event) -> None:
        key = str(event["orderId"])
        before = record_of(self.orders.get(key))
        updated = deadline.fold(before, event, self.settings.saga_deadline_s, self.settings.saga_repair_s)
        if updated is None:
            return  # seen before: the record has it, and the changelog has the record
        took = saga_seconds(before, updated)
        if took is not None:
            SAGA_SECONDS.labels(updated.status).observe(took)
        self.orders[key] = updated.to_json()
        due = updated.deadline
        if due != (before.deadline if before else None):
            self._reminded.pop(key, None)
        if due is None:
            self._deadlines.pop(key, None)
        else:
            self._deadlines[key] = due

    async def pay(self) -> PayClient:
        """The way to pay, made on first use (an aiohttp session belongs to the running loop)."""
        if self._pay is None:
            self._pay = PayClient.from_settings(aiohttp.ClientSession(), self.settings, self._stalls)
        return self._pay

    def _requests_at_once(self) -> int:
        calls = self._pay.calls.limit.value if self._pay is not None else self.settings.pay_bulkhead_initial
        return intake.requests_at_once(self.settings.order_requests_at_once, calls)

    async def _close_pay(self, *args: object, **kwargs: object) -> None:
        if self._pay is not None:
            await self._pay.http.close()

    async def on_request_order(self, command: Event) -> None:
        """Place an order another system asked for: the same checks and saga as `POST /orders`.

        An invalid request raises, and so becomes a dead letter with the reason. Outputs follow from the
        request's record: seen again, a request placed before announces that placement again (the same event
        ids); one whose placement a crash interrupted goes on with the order number on record.
        """
        request_id = command["requestId"]
        order = parse_order(command, self.settings.menu)
        correlation = command.get("correlationId") or f"request-{request_id}"
        customer = command.get("customerId")
        placed = self.requests.get(request_id)
        if placed is None:
            order_id = await self.numbers.take(correlation)
            placed = {"orderId": order_id, "status": OrderStatus.ORDERED.value, "reason": None, "retryAfter": None,
                      "item": order.item, "qty": order.qty, "price": order.price, "customerId": customer}
            self.requests[request_id] = placed
            # On record before the order is announced: a crash from here on places no other.
            await self.requests.written(request_id)
        cause = f"request/{request_id}"
        if placed["status"] == OrderStatus.ORDERED.value:
            placement = await intake.place_reserved(self.emit_acknowledged, await self.pay(), order, placed["orderId"],
                                                    correlation, customer, cause)
            self.requests[request_id] = {**placed, "status": placement.status.value, "reason": placement.reason,
                                         "retryAfter": placement.retry_after}
            log.info("request %s placed order %s: %s", request_id, placement.order_id, placement.status.value)
            self._tell_who_waits(request_id)
            return
        self._tell_who_waits(request_id)
        placement = intake.Placement(placed["orderId"], OrderStatus(placed["status"]), placed["reason"],
                                     placed["retryAfter"])
        recorded = OrderRequest(placed["item"], placed["qty"], placed["price"])
        for event in (intake.placed_event(placed["orderId"], recorded, correlation, placed["customerId"], cause),
                      intake.outcome_event(placement, recorded, correlation, cause)):
            if event is not None:
                await self.emit_acknowledged(event)

    async def placement(self, request_id: str, within_s: float) -> None:
        """Return once the request is placed, or after `within_s` seconds."""
        if intake.is_placed(self.requests.get(request_id)):
            return
        waiting = asyncio.get_running_loop().create_future()
        self._awaited_placements.setdefault(request_id, []).append(waiting)
        try:
            await asyncio.wait_for(waiting, within_s)
        except asyncio.TimeoutError:
            pass
        finally:
            others = [w for w in self._awaited_placements.pop(request_id, []) if w is not waiting]
            if others:
                self._awaited_placements[request_id] = others

    def _tell_who_waits(self, request_id: str) -> None:
        for waiting in self._awaited_placements.pop(request_id, []):
            if not waiting.done():
                waiting.set_result(None)

    async def emit_acknowledged(self, event: Event) -> int:
        return cast(int, await self.context_app.emit(event, wait=True))

    async def enforce_deadlines(self) -> None:
        self._know_deadlines()
        for key, due in deadline.overdue(list(self._deadlines.items()), time.time()):
            order = record_of(self.orders.get(key)) or OrderRecord()
            if self._reminded.get(key) == due or deadline.has_ended(order):
                continue  # reminded already, or ended: the agent moves the deadline on with the order's next event
            reminder = deadline.reminder(int(key), due, order)
            current_correlation.set(reminder["correlationId"])
            log.warning("order %s passed its %s deadline in %s; announcing %s", key, due.then, order.status,
                        reminder["type"])
            try:
                await self.context_app.emit(reminder)
            except KafkaError as exc:  # the broker is away: the next sweep announces it again
                log.warning("could not announce %s for order %s: %s", reminder["type"], key, exc)
                return
            self._reminded[key] = due
            DEADLINES_PASSED.labels(due.then).inc()

    def _know_deadlines(self) -> None:
        """Gather the open orders' deadlines from the table once its partitions are recovered, again whenever the
        partitions this worker holds have changed."""
        app = self.context_app.app
        if not app.tables.recovery.completed.is_set() or app.rebalancing:
            return
        held = frozenset(app.consumer.assignment())
        if held == self._deadlines_of:
            return
        s = self.settings
        self._deadlines = {key: due for key, row in self.orders.items() if (due := deadline.deadline_of(
            OrderRecord.from_json(row), s.saga_deadline_s, s.saga_repair_s)) is not None}
        self._deadlines_of = held
        log.info("%d open orders with a deadline in the partitions held", len(self._deadlines))
