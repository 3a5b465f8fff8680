"""pay's HTTP face (8083): POST /payments charges or refunds; GET /payments/{orderId} shows the ledger.

pay runs in one of two roles, chosen at start:
- the ledger (by default): the ledger commit is the decision; the outbox relay announces it on Kafka right
  after (and again after a crash), so a request is answered as soon as the money is recorded. It also
  follows the saga on Kafka (agents/pay/saga.py).
- a front, with PAY_LEDGER_URL set (on Kubernetes, the Deployment the HPA scales): it checks each request,
  takes the provider's time (PAY_DELAY_MS) and has the one pay that keeps the ledger record it. The ledger is
  a single writer — one SQLite file on one volume — so only the fronts scale.
PAY_DELAY_MS makes every charge and refund take that long, to replay the seed's slow-pay scenario.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents import idempotency
from agents.catalog import catalog
from agents.correlation import HTTP_HEADER, current
from agents.events import new_correlation_id
from agents.pay.ledger import Ledger
from agents.pay.payments import DECLINE, parse_payment
from agents.pay.saga import saga_handlers, take_time
from agents.runtime import faust_patches, tracing
from agents.runtime.metrics import Progress
from agents.runtime.pay import CONTEXT, follow_the_saga, relay_outbox
from agents.runtime.publisher import Publisher
from agents.settings import Settings
from api.http import SETTINGS, JsonError, Resources, json_response, order_id_in_path, read_json, service_app
from api.routes import authorized, principal_of

log = logging.getLogger(__name__)

LEDGER = web.AppKey("ledger", Ledger)
OUTBOX_WRITTEN = web.AppKey("outbox_written", asyncio.Event)
PROGRESS = web.AppKey("progress", Progress)
LEDGER_CLIENT = web.AppKey("ledger_client", aiohttp.ClientSession)


def init_app(settings: Settings) -> web.Application:
    """pay in the role its settings give it."""
    return front_app(settings) if settings.pay_ledger_url else ledger_app(settings)


def ledger_app(settings: Settings, connect: Resources | None = None) -> web.Application:
    """The ledger; `connect` opens the ledger and Kafka (a ledger alone, in tests)."""
    progress = Progress(CONTEXT)
    app = service_app("pay", settings, ledger_ready, connect or ledger_resources, inner=(authorized,),
                      live_check=lambda app: progress.stalled(settings.liveness_stall_s),
                      pipeline=progress.how_far_behind)
    app[PROGRESS], app[OUTBOX_WRITTEN] = progress, asyncio.Event()
    app.router.add_post("/payments", record_payment)
    app.router.add_get("/payments/{orderId}", show_payments)
    return app


def front_app(settings: Settings) -> web.Application:
    app = service_app("pay", settings, front_ready, front_resources, inner=(authorized,))
    app.router.add_post("/payments", pass_payment_on)
    app.router.add_get("/payments/{orderId}", pass_lookup_on)
    return app


async def ledger_resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ledger = Ledger(settings.pay_ledger_path, lambda event_type: catalog().topic_of_event(event_type).name,
                    limit=settings.pay_limit, trace_now=tracing.traceparent)
    await ledger.open()
    producer = AIOKafkaProducer(**settings.kafka_producer())
    await producer.start()
    app[LEDGER] = ledger
    app[OUTBOX_WRITTEN].set()  # whatever a previous run left unpublished goes out first
    consumer = AIOKafkaConsumer(
        *[t.name for t in catalog().topics_consumed_by(CONTEXT)], bootstrap_servers=settings.kafka_bootstrap,
        group_id="bread-pay", enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_min_bytes=settings.kafka_fetch_min_bytes, fetch_max_wait_ms=settings.kafka_fetch_poll_ms,
    )
    faust_patches.pace_fetches(settings.kafka_fetch_wait_ms / 1000)
    await consumer.start()
    stop = asyncio.Event()
    handlers = saga_handlers(ledger, settings.pay_delay_ms, app[OUTBOX_WRITTEN])
    follower = asyncio.create_task(follow_the_saga(consumer, handlers, Publisher(CONTEXT, producer).send,
                                                   app[PROGRESS], settings.consumer_lag_sample_s, stop))
    relay = asyncio.create_task(relay_outbox(ledger, producer, app[OUTBOX_WRITTEN]))
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


async def ledger_ready(app: web.Application) -> list[str]:
    return [] if LEDGER in app else ["ledger or Kafka not started"]


async def record_payment(request: web.Request) -> web.Response:
    app = request.app
    payment_request = parse_payment(await read_json(request), request.headers.get(idempotency.HEADER),
                                    principal_of(request))
    await take_time(app[SETTINGS].pay_delay_ms)
    with tracing.span("ledger write", **{"order.id": payment_request.order_id}):
        payment = await app[LEDGER].record(payment_request, current.get() or new_correlation_id())
    if payment.created:
        app[OUTBOX_WRITTEN].set()
    if payment.action == DECLINE:
        raise JsonError(402, payment.reason or "payment declined", **payment.as_json())
    return json_response(payment.as_json(), 201 if payment.created else 200,
                         headers={"Location": f"/payments/{payment.order_id}"})


async def show_payments(request: web.Request) -> web.Response:
    order_id = order_id_in_path(request)
    ledger = request.app[LEDGER]
    payments = await ledger.find(order_id)
    if not payments:
        raise JsonError(404, f"no payment for order {order_id}")
    # Whether a refund now needs an admin and a reason: pay's view of the order, as far as it has heard.
    return json_response({"orderId": order_id, "payments": [p.as_json() for p in payments],
                          "bakeryConfirmed": await ledger.is_bakery_confirmed(order_id)})


async def front_resources(app: web.Application) -> AsyncIterator[None]:
    app[LEDGER_CLIENT] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    yield
    await app[LEDGER_CLIENT].close()


async def front_ready(app: web.Application) -> list[str]:
    """A front is ready when the ledger is."""
    if LEDGER_CLIENT not in app:
        return ["HTTP client not started"]
    try:
        async with app[LEDGER_CLIENT].get(f"{app[SETTINGS].pay_ledger_url}/health",
                                          timeout=aiohttp.ClientTimeout(total=2)) as answer:
            return [] if answer.status == 200 else [f"the pay ledger answers {answer.status}"]
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return [f"the pay ledger is unreachable: {exc or 'timeout'}"]


async def pass_payment_on(request: web.Request) -> web.Response:
    """Check the request here, take the provider's time here, and have the ledger record it."""
    body = await read_json(request)
    parse_payment(body, request.headers.get(idempotency.HEADER), principal_of(request))  # refused here already
    await take_time(request.app[SETTINGS].pay_delay_ms)
    return await at_the_ledger(request, "POST", "/payments", body)


async def pass_lookup_on(request: web.Request) -> web.Response:
    return await at_the_ledger(request, "GET", f"/payments/{order_id_in_path(request)}")


async def at_the_ledger(request: web.Request, method: str, path: str, body: object = None) -> web.Response:
    """The ledger's answer to a request this front checked, passed back as it is."""
    headers = {k: v for k, v in request.headers.items() if k in (HTTP_HEADER, idempotency.HEADER)}
    headers[HTTP_HEADER] = current.get() or new_correlation_id()
    headers.update(tracing.http_headers())
    if principal_of(request):  # the ledger checks the caller again, and records who asked for a refund
        headers.update(principal_of(request).headers())
    try:
        async with request.app[LEDGER_CLIENT].request(
            method, f"{request.app[SETTINGS].pay_ledger_url}{path}", json=body, headers=headers,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as answer:
            location = {"Location": answer.headers["Location"]} if "Location" in answer.headers else {}
            return web.Response(body=await answer.read(), status=answer.status, content_type="application/json",
                                headers=location)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise JsonError(503, f"the pay ledger is unavailable: {exc or 'timeout'}") from None
