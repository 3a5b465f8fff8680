"""pay's HTTP face (8083): POST /payments charges or refunds; GET /payments/{orderId} shows the ledger.

The ledger commit is the decision; the outbox relay announces it on Kafka right after (and again after a
crash), so a request is answered as soon as the money is recorded. pay also follows the saga on Kafka: it
charges the payments the order edge deferred (PAY_FALLBACK=defer) and refunds or voids abandoned orders.
PAY_DELAY_MS makes every charge and refund take that long, to replay the seed's slow-pay scenario.

With PAY_LEDGER_URL set, this pay is a front (on Kubernetes, the Deployment the HPA scales): it checks each
request, takes the provider's time (PAY_DELAY_MS), and has the one pay that keeps the ledger record it. The
ledger is a single writer — one SQLite file on one volume — so only the front scales.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents.catalog import InvalidEvent, catalog
from agents.correlation import HTTP_HEADER, current, kafka_headers
from agents import idempotency
from agents.deadletters import dead_letter
from agents.events import decode, encode, new_correlation_id
from agents.runtime.metrics import EVENTS_CONSUMED, EVENTS_EMITTED, POISON_EVENTS, Progress
from agents.pay.ledger import Ledger
from agents.settings import Settings
from agents.pay.payments import (
    APPLY, DECLINE, PaymentRefused, PaymentRequest, check_payment,
)
from api.http import JsonError, json_response, order_id_in_path, read_json, service_app
from api.routes import authorized, principal_of

log = logging.getLogger(__name__)

LEDGER = web.AppKey("ledger", Ledger)
OUTBOX_PENDING = web.AppKey("outbox_pending", asyncio.Event)
LEDGER_CLIENT = web.AppKey("ledger_client", aiohttp.ClientSession)  # only on a front
PRODUCER = web.AppKey("producer", AIOKafkaProducer)
SETTINGS = web.AppKey("settings", Settings)
PROGRESS = web.AppKey("progress", Progress)
async def take_time(app: web.Application) -> None:
    """The artificial delay of PAY_DELAY_MS (none by default), as the seed's pay slept in each request."""
    low, high = app[SETTINGS].pay_delay_ms
    if high:
        await asyncio.sleep(random.uniform(low, high))


async def relay_outbox(app: web.Application) -> None:
    """Publish the outbox in order, as soon as something is written to it."""
    ledger, pending, producer = app[LEDGER], app[OUTBOX_PENDING], app[PRODUCER]
    while True:
        await pending.wait()
        pending.clear()
        try:
            while entries := await ledger.unpublished():
                events = [json.loads(e.value) for e in entries]
                sent = [await producer.send(e.topic, key=e.key, value=e.value, headers=kafka_headers(event))
                        for e, event in zip(entries, events)]
                await asyncio.gather(*sent)
                await ledger.mark_published([e.id for e in entries])
                for entry, event in zip(entries, events):
                    EVENTS_EMITTED.labels("pay", entry.topic, event["type"]).inc()
        except Exception:
            log.exception("outbox relay failed; retrying")
            await asyncio.sleep(1)  # back off before the next attempt against a failing broker
            pending.set()


# The saga's compensations that reach pay: the order will not be baked, so its money goes back.
VOIDING_EVENTS = {"OrderRejected", "BakeryRejected", "BakeryTicketClosed"}


async def on_saga_event(app: web.Application, event: dict) -> None:
    """Charge a deferred payment; refund or void an abandoned order; note a confirmed one (no refund without an
    admin any more); announce again what was decided for a stalled one. The ledger decides each at most once per order, so the order these arrive in (and any
    redelivery) cannot charge or refund twice; its outbox announces every decision, again after a crash."""
    ledger = app[LEDGER]
    if event["type"] == "PaymentRequested":
        await take_time(app)
        try:
            payment = await ledger.record(PaymentRequest(event["orderId"], event["price"], APPLY),
                                          event["correlationId"])
        except PaymentRefused as refused:  # voided meanwhile (cancelled, past its deadline): nothing to take
            log.info("deferred payment of order %s not taken: %s", event["orderId"], refused)
            return
        outcome = "charged" if payment.action == APPLY else f"declined ({payment.reason})"
        log.info("deferred payment of order %s: %s", event["orderId"], outcome if payment.created else "done before")
    elif event["type"] == "BakeryConfirmed":
        await ledger.bakery_confirmed(event["orderId"])
    elif event["type"] == "OrderStalled":
        again = await ledger.announce_again(event["orderId"])
        log.warning("order %s stalled in %s: announcing its %d payment event(s) again", event["orderId"],
                    event["status"], again)
    elif event["type"] in VOIDING_EVENTS:
        outcome = await ledger.void(event["orderId"], event["reason"], event["correlationId"])
        if outcome:
            log.info("order %s: %s after %s", event["orderId"], outcome, event["type"])
    app[OUTBOX_PENDING].set()


async def handle(app: web.Application, message) -> None:
    try:
        event = decode(message.value, message.topic)
        current.set(event["correlationId"])
        await on_saga_event(app, event)
        EVENTS_CONSUMED.labels("pay", message.topic, event["type"]).inc()
    except Exception as exc:  # noqa: BLE001 - a poison event must not stop pay
        POISON_EVENTS.labels("pay", message.topic).inc()
        log.error("dead-lettered message %s[%s]@%s: %s", message.topic, message.partition, message.offset,
                  exc, exc_info=not isinstance(exc, InvalidEvent))
        letter = dead_letter("pay", message.topic, message.partition, message.offset, message.key, message.value, exc)
        await app[PRODUCER].send_and_wait(catalog().topic_of_event("DeadLetter").name, value=encode(letter),
                                          headers=kafka_headers(letter))


async def follow_the_saga(app: web.Application, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
    """Handle pay's events batch by batch until `stop`; then commit what was handled (the caller leaves the
    group), so a graceful stop hands nothing handled twice to the next owner."""
    progress = app[PROGRESS]
    committed_at = sampled_at = time.monotonic()
    while not stop.is_set():
        try:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            # A batch at once: with PAY_DELAY_MS each charge takes its time, and they do not wait for each other.
            await asyncio.gather(*(handle(app, m) for batch in batches.values() for m in batch))
            for tp, batch in batches.items():
                progress.handled(tp.topic, tp.partition, batch[-1].offset)
            # Committing every batch would cost a request per batch; handling an event twice is harmless.
            if batches and time.monotonic() - committed_at >= 1:
                await consumer.commit()
                committed_at = time.monotonic()
            if time.monotonic() - sampled_at >= app[SETTINGS].consumer_lag_sample_s:
                await progress.sample(consumer.assignment(), consumer.highwater, consumer.position)
                sampled_at = time.monotonic()
        except KafkaError as exc:
            # The broker is gone or the group is rebalancing: what was not committed is handled again, which
            # the ledger makes harmless. Go on once it answers again.
            log.warning("pay's consumer: %s; going on", exc)
            await asyncio.sleep(1)  # back off before asking a failing broker again
    await consumer.commit()


async def resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ledger = Ledger(settings.pay_ledger_path, lambda event_type: catalog().topic_of_event(event_type).name,
                    limit=settings.pay_limit)
    await ledger.open()
    producer = AIOKafkaProducer(**settings.kafka_producer())
    await producer.start()
    app[LEDGER], app[PRODUCER], app[OUTBOX_PENDING] = ledger, producer, asyncio.Event()
    app[OUTBOX_PENDING].set()  # whatever a previous run left unpublished goes out first
    consumer = AIOKafkaConsumer(
        *[t.name for t in catalog().topics_consumed_by("pay")], bootstrap_servers=settings.kafka_bootstrap,
        group_id="bread-pay", enable_auto_commit=False, auto_offset_reset="earliest",
        # Never refund for an event whose transaction a Faust worker (exactly-once) may still abort.
        isolation_level="read_committed",
    )
    await consumer.start()
    stop = asyncio.Event()
    follower = asyncio.create_task(follow_the_saga(app, consumer, stop))
    relay = asyncio.create_task(relay_outbox(app))
    yield
    stop.set()  # the batch in hand is finished and committed
    try:
        await asyncio.wait_for(follower, timeout=10)
    except Exception:  # noqa: BLE001 - a failed or slow last batch is handled again by the next owner
        log.exception("pay's consumer did not stop cleanly")
    relay.cancel()  # what it has not published yet stays in the outbox for the next start
    await asyncio.gather(relay, return_exceptions=True)
    await consumer.stop()  # leaves the group
    await producer.stop()
    await ledger.close()


async def post_payment(request: web.Request) -> web.Response:
    try:
        body = await read_json(request)
        payment_request = check_payment(body, request.headers.get(idempotency.HEADER), principal_of(request))
        await take_time(request.app)
        if LEDGER_CLIENT in request.app:
            return await at_the_ledger(request, "POST", "/payments", body)
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
    order_id = order_id_in_path(request)
    if LEDGER_CLIENT in request.app:
        return await at_the_ledger(request, "GET", f"/payments/{order_id}")
    payments = await request.app[LEDGER].find(order_id)
    if not payments:
        raise JsonError(404, f"no payment for order {order_id}")
    # Whether a refund now needs an admin and a reason: pay's view of the order, as far as it has heard.
    confirmed = await request.app[LEDGER].is_bakery_confirmed(order_id)
    return json_response({"orderId": order_id, "payments": [p.as_json() for p in payments],
                          "bakeryConfirmed": confirmed})


async def at_the_ledger(request: web.Request, method: str, path: str, body: object = None) -> web.Response:
    """The ledger's answer to a request this front checked, passed back as it is."""
    headers = {k: v for k, v in request.headers.items() if k in (HTTP_HEADER, idempotency.HEADER)}
    headers[HTTP_HEADER] = current.get() or new_correlation_id()
    if principal_of(request):  # the ledger checks the caller again, and records who asked for a refund
        headers.update(principal_of(request).headers())
    try:
        async with request.app[LEDGER_CLIENT].request(method, f"{request.app[SETTINGS].pay_ledger_url}{path}", json=body, headers=headers,
                                                      timeout=aiohttp.ClientTimeout(total=10)) as answer:
            return web.Response(body=await answer.read(), status=answer.status,
                                content_type="application/json", headers=_location(answer))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise JsonError(503, f"the pay ledger is unavailable: {exc or 'timeout'}") from None


def _location(answer: aiohttp.ClientResponse) -> dict[str, str]:
    return {"Location": answer.headers["Location"]} if "Location" in answer.headers else {}


async def front_resources(app: web.Application) -> AsyncIterator[None]:
    app[LEDGER_CLIENT] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    yield
    await app[LEDGER_CLIENT].close()


async def ready(app: web.Application) -> list[str]:
    if LEDGER_CLIENT in app:  # a front is ready when the ledger is
        try:
            async with app[LEDGER_CLIENT].get(f"{app[SETTINGS].pay_ledger_url}/health",
                                              timeout=aiohttp.ClientTimeout(total=2)) as answer:
                return [] if answer.status == 200 else [f"the pay ledger answers {answer.status}"]
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return [f"the pay ledger is unreachable: {exc or 'timeout'}"]
    return [] if PRODUCER in app else ["ledger or Kafka producer not started"]


def init_app(settings: Settings) -> web.Application:
    app = service_app("pay", ready, inner=(authorized,), debug=settings.bread_debug,
                      live_check=lambda app: app[PROGRESS].stalled(settings.liveness_stall_s))
    app[SETTINGS] = settings
    app[PROGRESS] = Progress("pay")
    app.cleanup_ctx.append(front_resources if settings.pay_ledger_url else resources)
    app.router.add_post("/payments", post_payment)
    app.router.add_get("/payments/{orderId}", get_payments)
    return app
