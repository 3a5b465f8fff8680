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
from agents.correlation import current, kafka_headers
from agents.events import Event, encode, key_of, make_event, new_correlation_id
from agents.order.lifecycle import CancelRefused, OrderStatus, check_cancellable
from agents.order import intake
from agents.order.intake import Emit
from agents.order.menu import InvalidOrder, check_order, menu_from_env
from api.http import JsonError, json_response, kafka_producer_settings, read_json, service_app

log = logging.getLogger(__name__)

PRODUCER = web.AppKey("producer", AIOKafkaProducer)
HTTP = web.AppKey("http", aiohttp.ClientSession)
MENU = web.AppKey("menu", dict)
EDGE_NAME = f"{socket.gethostname()}:{os.getpid()}"
CANCELLED_BY_CUSTOMER = "cancelled by the customer"


async def resources(app: web.Application) -> AsyncIterator[None]:
    producer = AIOKafkaProducer(**kafka_producer_settings(config.kafka_bootstrap()))
    await producer.start()
    # One pooled client for every call to pay and to the order worker: no per-request connection set-up.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    app[PRODUCER], app[HTTP] = producer, http
    yield
    await http.close()
    await producer.stop()


def emitter(app: web.Application) -> Emit:
    async def emit(event: Event) -> int:
        """Send one event (acks=all) and return its offset."""
        topic = catalog().topic_of_event(event["type"]).name
        metadata = await app[PRODUCER].send_and_wait(topic, key=key_of(event), value=encode(event),
                                                     headers=kafka_headers(event))
        return metadata.offset

    return emit


async def place_order(request: web.Request) -> web.Response:
    app = request.app
    try:
        order = check_order(await read_json(request), app[MENU])
    except InvalidOrder as exc:
        raise JsonError(400, str(exc)) from None
    placed = await intake.place(emitter(app), app[HTTP], order, current.get() or new_correlation_id(), EDGE_NAME)
    if placed.status == OrderStatus.REJECTED:
        log.warning("order %s rejected: %s", placed.order_id, placed.reason)
        raise JsonError(503, placed.reason, orderId=placed.order_id, status=placed.status.value)
    if placed.status == OrderStatus.PAYMENT_FAILED:
        raise JsonError(402, placed.reason, orderId=placed.order_id, status=placed.status.value)
    body = {"id": placed.order_id, "item": order.item, "qty": order.qty, "status": placed.status.value,
            "price": order.price}
    return json_response(body, 201, headers={"Location": f"/orders/{placed.order_id}"})


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
            if response.content_type != "application/json":  # not bread's answer: the worker is in trouble
                raise aiohttp.ClientError(f"it answered {response.status} {response.reason}")
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
        await emitter(request.app)(make_event("OrderCancelled", correlation_id=saga, orderId=order_id,
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
