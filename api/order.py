"""The order edge (8081): takes orders, charges them through pay synchronously, and announces both on Kafka.

POST /orders: check the request against the menu, reserve an order number, emit OrderPlaced, call pay with a
timeout. Pay down or slow: emit OrderRejected and answer 503 at once, so no order is left dangling.
GET /orders/{id}: the order's state from the order worker's table (Faust routes it to the key's owner).
DELETE /orders/{id}: the customer cancels (until the bakery confirms): OrderCancelled starts the compensation.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

from agents import config
from agents.catalog import catalog
from agents.correlation import HTTP_HEADER, current, kafka_headers
from agents.events import Event, encode, key_of, make_event, new_correlation_id
from agents.order.lifecycle import CancelRefused, OrderStatus, check_cancellable
from agents.order.menu import InvalidOrder, OrderRequest, check_order, menu_from_env
from api.http import JsonError, json_response, kafka_producer_settings, read_json, service_app

log = logging.getLogger(__name__)

PRODUCER = web.AppKey("producer", AIOKafkaProducer)
HTTP = web.AppKey("http", aiohttp.ClientSession)
MENU = web.AppKey("menu", dict)
EDGE_NAME = f"{socket.gethostname()}:{os.getpid()}"
CANCELLED_BY_CUSTOMER = "cancelled by the customer"


class PaymentUnavailable(Exception):
    """pay could not be reached, did not answer in time, or failed."""


class PaymentDeclined(Exception):
    """pay answered, and refused the charge; pay itself announces it (PayRejected)."""


def pay_timeout() -> float:
    return config.env_float("PAY_TIMEOUT_S", 1.5)


async def resources(app: web.Application) -> AsyncIterator[None]:
    producer = AIOKafkaProducer(**kafka_producer_settings(config.kafka_bootstrap()))
    await producer.start()
    # One pooled client for every call to pay and to the order worker: no per-request connection set-up.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    app[PRODUCER], app[HTTP] = producer, http
    yield
    await http.close()
    await producer.stop()


async def emit(app: web.Application, event: Event) -> int:
    """Send one event (acks=all) and return its offset."""
    topic = catalog().topic_of_event(event["type"]).name
    metadata = await app[PRODUCER].send_and_wait(topic, key=key_of(event), value=encode(event),
                                                 headers=kafka_headers(event))
    return metadata.offset


async def reserve_order_id(app: web.Application, correlation: str) -> int:
    """The next order number: the offset of a reservation on the one-partition sequence topic, plus one."""
    offset = await emit(app, make_event("OrderNumberReserved", correlation_id=correlation, reservedBy=EDGE_NAME))
    return offset + 1


async def charge(app: web.Application, order_id: int, order: OrderRequest, correlation: str) -> dict:
    try:
        async with app[HTTP].post(
            f"{config.service_url('pay')}/payments",
            json={"orderId": order_id, "price": order.price, "action": "apply"},
            headers={HTTP_HEADER: correlation},
            timeout=aiohttp.ClientTimeout(total=pay_timeout()),
        ) as response:
            if response.status == 402:
                raise PaymentDeclined((await response.json()).get("error", "payment declined"))
            if response.status >= 300:
                raise PaymentUnavailable(f"pay answered {response.status}: {(await response.text())[:200]}")
            return await response.json()
    except asyncio.TimeoutError:
        raise PaymentUnavailable(f"pay did not answer within {pay_timeout()}s") from None
    except aiohttp.ClientError as exc:
        raise PaymentUnavailable(f"pay is unreachable: {exc}") from None


async def place_order(request: web.Request) -> web.Response:
    app = request.app
    try:
        order = check_order(await read_json(request), app[MENU])
    except InvalidOrder as exc:
        raise JsonError(400, str(exc)) from None
    correlation = current.get() or new_correlation_id()
    order_id = await reserve_order_id(app, correlation)
    await emit(app, make_event("OrderPlaced", correlation_id=correlation,
                               orderId=order_id, item=order.item, qty=order.qty, price=order.price))
    try:
        await charge(app, order_id, order, correlation)
    except PaymentUnavailable as exc:
        reason = f"payment unavailable: {exc}"
        log.warning("order %s rejected: %s", order_id, reason)
        await emit(app, make_event("OrderRejected", correlation_id=correlation, orderId=order_id, reason=reason))
        raise JsonError(503, reason, orderId=order_id, status=OrderStatus.REJECTED.value) from None
    except PaymentDeclined as exc:
        raise JsonError(402, f"payment declined: {exc}", orderId=order_id,
                        status=OrderStatus.PAYMENT_FAILED.value) from None
    body = {"id": order_id, "item": order.item, "qty": order.qty, "status": OrderStatus.PAID.value,
            "price": order.price}
    return json_response(body, 201, headers={"Location": f"/orders/{order_id}"})


def order_id_of(request: web.Request) -> int:
    order_id = request.match_info["orderId"]
    if not order_id.isdigit() or int(order_id) < 1:
        raise JsonError(400, "the order id must be a positive whole number")
    return int(order_id)


async def order_state(app: web.Application, order_id: int) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of the order as the order worker's table has it."""
    try:
        async with app[HTTP].get(
            f"{config.service_url('order-worker')}/orders/{order_id}", timeout=aiohttp.ClientTimeout(total=5)
        ) as response:
            return response.status, await response.read()
    except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
        raise JsonError(503, f"the order worker is unavailable: {exc or 'timeout'}") from None


async def get_order(request: web.Request) -> web.Response:
    status, body = await order_state(request.app, order_id_of(request))
    return web.Response(body=body, status=status, content_type="application/json")


async def cancel_order(request: web.Request) -> web.Response:
    """The customer cancels: refused once the bakery confirmed or the order ended; the saga does the rest."""
    order_id = order_id_of(request)
    status, body = await order_state(request.app, order_id)
    if status != 200:
        return web.Response(body=body, status=status, content_type="application/json")
    order = json.loads(body)
    try:
        announce = check_cancellable(OrderStatus(order["status"]))
    except CancelRefused as exc:
        raise JsonError(409, f"order {order_id} cannot be cancelled: {exc}", orderId=order_id,
                        status=order["status"]) from None
    if announce:
        # The cancel belongs to the order's saga, whoever asks for it.
        saga = order.get("correlationId") or current.get() or new_correlation_id()
        await emit(request.app, make_event("OrderCancelled", correlation_id=saga, orderId=order_id,
                                           reason=CANCELLED_BY_CUSTOMER))
    return json_response({**order, "status": OrderStatus.CANCELLING.value}, 202)


async def ready(app: web.Application) -> list[str]:
    return [] if PRODUCER in app else ["Kafka producer not started"]


def init_app() -> web.Application:
    app = service_app("order", ready)
    app[MENU] = menu_from_env()
    app.cleanup_ctx.append(resources)
    app.router.add_post("/orders", place_order)
    app.router.add_get("/orders/{orderId}", get_order)
    app.router.add_delete("/orders/{orderId}", cancel_order)
    return app
