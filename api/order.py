"""The order edge (8081): takes orders, charges them through pay synchronously, and announces both on Kafka.

POST /orders: check the request against the menu, refuse it (503) while the saga runs too far behind
(agents/order/admission.py) or while pay's breaker is open with PAY_FALLBACK=reject, take an order number,
emit OrderPlaced, call pay — its turn at the bulkhead, then a timeout behind the circuit breaker. Pay down,
slow, busy or its breaker open: with PAY_FALLBACK=reject emit OrderRejected and answer 503 with Retry-After,
so no order is left dangling; with PAY_FALLBACK=defer emit PaymentRequested and answer 202 PaymentPending.
GET /orders/{id}: the order's state from the order worker's table (Faust routes it to the key's owner).
DELETE /orders/{id}: the customer cancels (until the bakery confirms): OrderCancelled starts the compensation.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

from agents.breaker import CircuitOpen
from agents.correlation import current
from agents.events import make_event, new_correlation_id
from agents.idempotency import HEADER as IDEMPOTENCY_HEADER
from agents.idempotency import parse_key
from agents.order import intake
from agents.order.lifecycle import OrderStatus, customer_cancel
from agents.order.menu import OrderRequest, parse_order
from agents.runtime.pay_client import PayClient
from agents.runtime.publisher import Publisher
from agents.runtime.stalls import Stalls
from agents.settings import Settings
from api.admission import admitted, watch_the_pipeline
from api.http import (
    SETTINGS,
    JsonError,
    Resources,
    error_response,
    json_response,
    order_id_in_path,
    read_json,
    service_app,
)
from api.routes import authorized, principal_of

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("publisher", Publisher)
HTTP = web.AppKey("http", aiohttp.ClientSession)
PAY = web.AppKey("pay", PayClient)
NUMBERS = web.AppKey("numbers", intake.OrderNumbers)
EDGE_NAME = f"{socket.gethostname()}:{os.getpid()}"
PLACEMENT_WAIT_S = 5.0  # beyond pay's timeout, for a keyed order to come back from the order worker


async def resources(app: web.Application) -> AsyncIterator[None]:
    producer = AIOKafkaProducer(**app[SETTINGS].kafka_producer())
    await producer.start()
    # One pooled client for every call to pay and to the order worker: no per-request connection set-up.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    stalls = Stalls("order")
    watching = asyncio.create_task(stalls.watch())
    app[PUBLISHER], app[HTTP] = Publisher("order", producer), http
    app[PAY] = PayClient.from_settings(http, app[SETTINGS], stalls)
    yield
    watching.cancel()
    await http.close()
    await producer.stop()


async def place_order(request: web.Request) -> web.Response:
    app = request.app
    order = parse_order(await read_json(request), app[SETTINGS].menu)
    key = parse_key(request.headers.get(IDEMPOTENCY_HEADER))
    customer = customer_of(request)
    if key is not None:
        return await place_once(request, key, order, customer)
    refuse_while_pay_is_refused(app[PAY])  # before the door: a refusal costs no turn, and waits for none
    async with admitted(request, at_the_edge=True):
        placed = await intake.place(app[PUBLISHER].send, app[NUMBERS], app[PAY], order,
                                    current.get() or new_correlation_id(), customer)
    return placement_answer(placed.order_id, placed.status, placed.reason, order, placed.retry_after)


def refuse_while_pay_is_refused(pay: PayClient) -> None:
    """503 at once, before any order exists, while an order could only be rejected (the breaker is open)."""
    try:
        intake.check_pay_callable(pay)
    except CircuitOpen as exc:
        retry_after = max(1, math.ceil(exc.retry_after))
        raise JsonError(503, f"payment unavailable: {exc}", headers={"Retry-After": str(retry_after)},
                        retryAfterS=retry_after) from None


def placement_answer(order_id: int, status: OrderStatus, reason: str | None, order: OrderRequest,
                     retry_after: float | None = None) -> web.Response:
    """The answer to a placement, the same for the first request and for every repeat of it."""
    if status == OrderStatus.REJECTED:
        log.warning("order %s rejected: %s", order_id, reason)
        return error_response(503, reason, headers={"Retry-After": str(max(1, math.ceil(retry_after or 1)))},
                              orderId=order_id, status=status.value)
    if status == OrderStatus.PAYMENT_FAILED:
        return error_response(402, reason, orderId=order_id, status=status.value)
    body = {"id": order_id, "item": order.item, "qty": order.qty, "status": status.value, "price": order.price}
    if status == OrderStatus.PAYMENT_PENDING:
        return json_response({**body, "reason": reason}, 202, headers={"Location": f"/orders/{order_id}"})
    return json_response(body, 201, headers={"Location": f"/orders/{order_id}"})


async def placement_of(app: web.Application, key: str, wait_s: float = 0.0) -> dict | None:
    """What the order worker recorded for a keyed request, or None while it has not placed it: at once, or
    as soon as it is placed within `wait_s` seconds (the worker holds its answer until then)."""
    try:
        async with app[HTTP].get(f"{app[SETTINGS].service_url('order-worker')}/placements/{key}",
                                 params={"wait": f"{wait_s:.3f}"} if wait_s else None,
                                 timeout=aiohttp.ClientTimeout(total=wait_s + 5)) as response:
            placed = await response.json() if response.status == 200 else None
    except (asyncio.TimeoutError, aiohttp.ClientError):
        return None
    return placed if intake.is_placed(placed) else None


def customer_of(request: web.Request) -> str | None:
    """Whose the order is: the principal the gateway authenticated, if it did."""
    principal = principal_of(request)
    return principal.name if principal else None


async def place_once(request: web.Request, key: str, order: OrderRequest, customer: str | None) -> web.Response:
    """Place the order through the order worker's request log, keyed by the Idempotency-Key: requests with
    one key go to one partition and are placed one after the other, so a repeat — to any edge replica —
    finds the first placement instead of making a second."""
    app = request.app
    placed = await placement_of(app, key)
    if placed is None:
        async with admitted(request, at_the_edge=True):  # one placed before is answered however busy bread is
            await app[PUBLISHER].send(make_event(
                "RequestOrder", correlation_id=current.get() or new_correlation_id(), requestId=key,
                item=order.item, qty=order.qty, **({"customerId": customer} if customer else {})))
            placed = await placement_of(app, key, wait_s=app[SETTINGS].pay_timeout_s + PLACEMENT_WAIT_S)
    if placed is None:
        return json_response({"requestId": key, "status": "Requested"}, 202,
                             headers={"Location": f"/order-requests/{key}"})
    intake.check_same_request(placed, key, order, customer)
    return placement_answer(placed["orderId"], OrderStatus(placed["status"]), placed["reason"], order,
                            placed.get("retryAfter"))


async def order_state(request: web.Request, order_id: int) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of the order as the order worker's table has it (for the request's principal:
    another customer's order is not found)."""
    principal = principal_of(request)
    try:
        async with request.app[HTTP].get(
            f"{request.app[SETTINGS].service_url('order-worker')}/orders/{order_id}",
            timeout=aiohttp.ClientTimeout(total=5),
            headers=principal.headers() if principal else None,
        ) as response:
            if response.content_type != "application/json":  # not bread's answer: the worker is in trouble
                raise aiohttp.ClientError(f"it answered {response.status} {response.reason}")
            return response.status, await response.read()
    except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
        raise JsonError(503, f"the order worker is unavailable: {exc or 'timeout'}") from None


async def get_order(request: web.Request) -> web.Response:
    status, body = await order_state(request, order_id_in_path(request))
    return web.Response(body=body, status=status, content_type="application/json")


async def cancel_order(request: web.Request) -> web.Response:
    """The customer cancels: refused once the bakery confirmed or the order ended; the saga does the rest."""
    order_id = order_id_in_path(request)
    status, body = await order_state(request, order_id)
    if status != 200:
        return web.Response(body=body, status=status, content_type="application/json")
    order = json.loads(body)
    cancel = customer_cancel(order, current.get() or new_correlation_id())
    if cancel is not None:
        await request.app[PUBLISHER].send(cancel)
    return json_response({**order, "status": OrderStatus.CANCELLING.value}, 202)


async def menu(request: web.Request) -> web.Response:
    """The menu orders are checked against, with each item's price."""
    return json_response({"items": [{"item": item, "price": price}
                                    for item, price in request.app[SETTINGS].menu.items()]})


async def ready(app: web.Application) -> list[str]:
    return [] if PUBLISHER in app else ["Kafka producer not started"]


def init_app(settings: Settings, connect: Resources = resources,
             watch: Resources = watch_the_pipeline) -> web.Application:
    """The order edge; `connect` opens what it talks to (Kafka, pay, the order worker), `watch` its watch on how
    far behind the contexts run: fakes, in tests."""
    app = service_app("order", settings, ready, connect, inner=(authorized,))
    app.cleanup_ctx.append(watch)
    app[NUMBERS] = intake.OrderNumbers(lambda event: app[PUBLISHER].send(event), EDGE_NAME)
    app.router.add_get("/menu", menu)
    app.router.add_post("/orders", place_order)
    app.router.add_get("/orders/{orderId}", get_order)
    app.router.add_delete("/orders/{orderId}", cancel_order)
    return app
