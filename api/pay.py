"""pay's HTTP face (8083): POST /payments charges or refunds; GET /payments/{orderId} shows the ledger.

The ledger commit is the decision; the outbox relay announces it on Kafka right after (and again after a
crash), so a request is answered as soon as the money is recorded.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents import config
from agents.catalog import InvalidEvent, catalog
from agents.correlation import current, kafka_headers
from agents import idempotency
from agents.deadletters import dead_letter
from agents.events import decode, encode, new_correlation_id
from agents.pay.ledger import Ledger
from agents.pay.payments import DECLINE, DEFAULT_LIMIT, PaymentRefused, check_payment
from api.http import JsonError, json_response, read_json, service_app

log = logging.getLogger(__name__)

LEDGER = web.AppKey("ledger", Ledger)
OUTBOX_PENDING = web.AppKey("outbox_pending", asyncio.Event)
PRODUCER = web.AppKey("producer", AIOKafkaProducer)


def ledger_path() -> Path:
    return Path(config.env("PAY_DB", str(config.data_dir() / "pay" / "ledger.sqlite3")))


async def relay_outbox(app: web.Application) -> None:
    """Publish the outbox in order, as soon as something is written to it."""
    ledger, pending, producer = app[LEDGER], app[OUTBOX_PENDING], app[PRODUCER]
    while True:
        await pending.wait()
        pending.clear()
        try:
            while entries := await ledger.unpublished():
                sent = [await producer.send(e.topic, key=e.key, value=e.value,
                                            headers=kafka_headers(json.loads(e.value))) for e in entries]
                await asyncio.gather(*sent)
                await ledger.mark_published([e.id for e in entries])
        except Exception:
            log.exception("outbox relay failed; retrying")
            await asyncio.sleep(1)  # back off before the next attempt against a failing broker
            pending.set()


# The saga's compensations that reach pay: the order will not be baked, so its money goes back.
VOIDING_EVENTS = {"OrderRejected", "BakeryRejected", "BakeryTicketClosed"}


async def void_abandoned_orders(app: web.Application, consumer: AIOKafkaConsumer) -> None:
    """Compensate: an order rejected at intake, refused by the bakery or cancelled is refunded, or never charged."""
    ledger, pending = app[LEDGER], app[OUTBOX_PENDING]
    committed_at = time.monotonic()
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=500)
        for message in (m for batch in batches.values() for m in batch):
            try:
                event = decode(message.value, message.topic)
                current.set(event["correlationId"])
                if event["type"] in VOIDING_EVENTS:
                    outcome = await ledger.void(event["orderId"], event["reason"], event["correlationId"])
                    if outcome:
                        log.info("order %s: %s after %s", event["orderId"], outcome, event["type"])
                        pending.set()
            except Exception as exc:  # noqa: BLE001 - a poison event must not stop compensation
                log.error("dead-lettered message %s[%s]@%s: %s", message.topic, message.partition, message.offset,
                          exc, exc_info=not isinstance(exc, InvalidEvent))
                letter = dead_letter("pay", message.topic, message.partition, message.offset, message.key,
                                     message.value, exc)
                await app[PRODUCER].send_and_wait(catalog().topic_of_event("DeadLetter").name, value=encode(letter),
                                                  headers=kafka_headers(letter))
        # Committing every batch would cost a request per batch; voiding twice is harmless.
        if batches and time.monotonic() - committed_at >= 1:
            await consumer.commit()
            committed_at = time.monotonic()


async def resources(app: web.Application) -> AsyncIterator[None]:
    ledger = Ledger(ledger_path(), lambda event_type: catalog().topic_of_event(event_type).name,
                    limit=config.env_int("PAY_LIMIT", DEFAULT_LIMIT))
    await ledger.open()
    producer = AIOKafkaProducer(**config.kafka_producer_settings())
    await producer.start()
    app[LEDGER], app[PRODUCER], app[OUTBOX_PENDING] = ledger, producer, asyncio.Event()
    app[OUTBOX_PENDING].set()  # whatever a previous run left unpublished goes out first
    consumer = AIOKafkaConsumer(
        *[t.name for t in catalog().topics_consumed_by("pay")], bootstrap_servers=config.kafka_bootstrap(),
        group_id="bread-pay", enable_auto_commit=False, auto_offset_reset="earliest",
        # Never refund for an event whose transaction a Faust worker (exactly-once) may still abort.
        isolation_level="read_committed",
    )
    await consumer.start()
    tasks = [asyncio.create_task(relay_outbox(app)), asyncio.create_task(void_abandoned_orders(app, consumer))]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await consumer.stop()
    await producer.stop()
    await ledger.close()


async def post_payment(request: web.Request) -> web.Response:
    try:
        payment_request = check_payment(await read_json(request), request.headers.get(idempotency.HEADER))
        payment = await request.app[LEDGER].record(payment_request, current.get() or new_correlation_id())
    except PaymentRefused as exc:
        raise JsonError(exc.status, str(exc)) from None
    if payment.created:
        request.app[OUTBOX_PENDING].set()
    if payment.action == DECLINE:
        raise JsonError(402, payment.reason or "payment declined", **payment.as_json())
    return json_response(payment.as_json(), 201 if payment.created else 200,
                         headers={"Location": f"/payments/{payment.order_id}"})


async def get_payments(request: web.Request) -> web.Response:
    order_id = request.match_info["orderId"]
    if not order_id.isdigit():
        raise JsonError(400, "the order id must be a positive whole number")
    payments = await request.app[LEDGER].find(int(order_id))
    if not payments:
        raise JsonError(404, f"no payment for order {order_id}")
    return json_response({"orderId": int(order_id), "payments": [p.as_json() for p in payments]})


async def ready(app: web.Application) -> list[str]:
    return [] if PRODUCER in app else ["ledger or Kafka producer not started"]


def init_app() -> web.Application:
    app = service_app("pay", ready)
    app.cleanup_ctx.append(resources)
    app.router.add_post("/payments", post_payment)
    app.router.add_get("/payments/{orderId}", get_payments)
    return app
