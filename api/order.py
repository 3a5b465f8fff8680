"""The order edge (8081): takes orders, charges them through pay synchronously, and announces both on Kafka.

POST /orders: check the request against the menu, reserve an order number, emit OrderPlaced, call pay with a
timeout. Pay down or slow: emit OrderRejected and answer 503 at once, so no order is left dangling.
GET /orders/{id}: the order's state from the order worker's table (Faust routes it to the key's owner).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

from agents import config
from agents.catalog import catalog
from agents.events import Event, encode, key_of, make_event, new_correlation_id
from agents.order.lifecycle import OrderStatus
from agents.order.menu import InvalidOrder, OrderRequest, check_order, menu_from_env
from api.http import JsonError, json_response, kafka_producer_settings, read_json, service_app

log = logging.getLogger(__name__)

PRODUCER = web.AppKey("producer", AIOKafkaProducer)
HTTP = web.AppKey("http", aiohttp.ClientSession)
MENU = web.AppKey("menu", dict)
EDGE_NAME = f"{socket.gethostname()}:{os.getpid()}"


class PaymentUnavailable(Exception):
    """pay could not be reached, did not answer in time, or failed."""


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
    metadata = await app[PRODUCER].send_and_wait(topic, key=key_of(event), value=encode(event))
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
            headers={"X-Correlation-ID": correlation},
            timeout=aiohttp.ClientTimeout(total=pay_timeout()),
        ) as response:
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
    correlation = request.headers.get("X-Correlation-ID") or new_correlation_id()
    order_id = await reserve_order_id(app, correlation)
    await emit(app, make_event("OrderPlaced", correlation_id=correlation,
                               orderId=order_id, item=order.item, qty=order.qty, price=order.price))
    try:
        await charge(app, order_id, order, correlation)
    except PaymentUnavailable as exc:
        reason = f"payment unavailable: {exc}"
        log.warning("order %s rejected: %s [correlation %s]", order_id, reason, correlation)
        await emit(app, make_event("OrderRejected", correlation_id=correlation, orderId=order_id, reason=reason))
        raise JsonError(503, reason, orderId=order_id, status=OrderStatus.REJECTED.value) from None
    body = {"id": order_id, "item": order.item, "qty": order.qty, "status": OrderStatus.PAID.value,
            "price": order.price}
    return json_response(body, 201, headers={"Location": f"/orders/{order_id}", "X-Correlation-ID": correlation})


async def get_order(request: web.Request) -> web.Response:
    order_id = request.match_info["orderId"]
    if not order_id.isdigit():
        raise JsonError(400, "the order id must be a positive whole number")
    try:
        async with request.app[HTTP].get(
            f"{config.service_url('order-worker')}/orders/{order_id}", timeout=aiohttp.ClientTimeout(total=5)
        ) as response:
            return web.Response(body=await response.read(), status=response.status,
                                content_type="application/json")
    except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
        raise JsonError(503, f"the order worker is unavailable: {exc or 'timeout'}") from None


async def ready(app: web.Application) -> list[str]:
    return [] if PRODUCER in app else ["Kafka producer not started"]


def init_app() -> web.Application:
    app = service_app("order", ready)
    app[MENU] = menu_from_env()
    app.cleanup_ctx.append(resources)
    app.router.add_post("/orders", place_order)
    app.router.add_get("/orders/{orderId}", get_order)
    return app
