"""What every aiohttp service of bread shares: JSON errors, request metrics, the probe pages, and a graceful stop.

The probe pages (/health, /live, /metrics, the debug switches) are the ones the Faust workers answer too
(agents/runtime/probes.py). On SIGTERM a service turns not ready at once, keeps serving for BREAD_DRAIN_S so
traffic moves away, then finishes the requests in flight and exits (`serve`).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import Counter, Histogram

from agents.bakery.tickets import NoTicket, TicketDecided
from agents.correlation import HTTP_HEADER, carried, current
from agents.deadletters import NoSuchLetter
from agents.events import MAX_ORDER_ID, is_order_id, new_correlation_id
from agents.idempotency import KeyUsedBefore
from agents.order.lifecycle import CancelRefused
from agents.pay.payments import NotAsThePaymentsStand, RefundNotYours
from agents.refusal import Refusal
from agents.runtime import probes, tracing
from agents.settings import Settings

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("bread_http_requests_total", "HTTP requests served", ["service", "route", "status"])
HTTP_LATENCY = Histogram(
    "bread_http_request_seconds", "HTTP request latency", ["service", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

ReadyCheck = Callable[[web.Application], Awaitable[list[str]]]
LiveCheck = Callable[[web.Application], list[str]]
SERVICE = web.AppKey("service", str)
SETTINGS = web.AppKey("settings", Settings)
STOPPING = web.AppKey("stopping", asyncio.Event)
STOP_GRACE_S = 15  # after the drain, how long a stopping service may take to finish what is in flight


class JsonError(Exception):
    """A request that ends in an HTTP error with a JSON body naming the problem."""

    def __init__(self, http_status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.headers = headers
        self.body = {"error": message, **extra}


# The one place where a refusal by a context's rules becomes an HTTP answer, for every face (the aiohttp services'
# middleware and the Faust views): the most particular kind first.
# Any other refusal is a request to correct: 400.
REFUSALS: tuple[tuple[type[Refusal], int], ...] = (
    (NoTicket, 404), (TicketDecided, 409), (RefundNotYours, 403), (NotAsThePaymentsStand, 409),
    (CancelRefused, 409), (KeyUsedBefore, 422), (NoSuchLetter, 404), (Refusal, 400),
)


def refusal(refused: Refusal) -> JsonError:
    """The HTTP answer to a refusal by a context's rules: its status, its message as the reason, and its facts."""
    return JsonError(next(status for kind, status in REFUSALS if isinstance(refused, kind)), str(refused),
                     **refused.details)


class AnswerBroken(Exception):
    """A streamed answer failed after it began: no error body can follow it, the connection is dropped."""


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status=status, headers=headers,
                        content_type="application/json")


def error_response(http_status: int, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> web.Response:
    """An error answered rather than raised: the same JSON body as a JsonError's."""
    return json_response({"error": message, **extra}, http_status, headers)


def order_id_in_path(request: web.Request) -> int:
    raw = request.match_info["orderId"]
    order_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 16 else 0
    if not is_order_id(order_id):
        raise JsonError(400, f"the order id must be a whole number from 1 to {MAX_ORDER_ID}")
    return order_id


async def read_json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise JsonError(400, f"the body is not valid JSON: {exc}") from None


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Turn every error into a JSON body, count and time every request by route and status, and carry the
    caller's correlation id (or a new one) through the handling and back in the answer."""
    started = time.perf_counter()
    correlation = carried(request.headers.get(HTTP_HEADER)) or new_correlation_id()
    current.set(correlation)
    route = matched_route(request)
    try:
        response = await handler(request)
    except JsonError as exc:
        response = json_response(exc.body, exc.http_status, exc.headers)
    except Refusal as refused:
        answer = refusal(refused)
        response = json_response(answer.body, answer.http_status)
    except AnswerBroken:
        HTTP_REQUESTS.labels(request.app[SERVICE], route, "broken").inc()
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_response({"error": exc.reason}, exc.status, headers={
            k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}
        })
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = json_response({"error": "internal error"}, 500)
    response.headers[HTTP_HEADER] = correlation
    served, took = _metrics_of(request.app[SERVICE], route, response.status)
    served.inc()
    took.observe(time.perf_counter() - started)
    return response


def matched_route(request: web.Request) -> str:
    """The route a request matched, as declared (`/orders/{orderId}`): what its metrics and span are named by."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def traced(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Each request a span of the caller's trace (its `traceparent`), around all else done for it (only while
    tracing: otherwise no application has this middleware)."""
    route = matched_route(request)
    with tracing.span(f"{request.method} {route}", "server", request.headers,
                      **{"http.request.method": request.method, "http.route": route}) as span:
        response = await handler(request)
        tracing.answered(span, response.status)
        return response


@functools.lru_cache(maxsize=4096)
def _metrics_of(service: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of one service, route and status (looked up once)."""
    return HTTP_REQUESTS.labels(service, route, str(status)), HTTP_LATENCY.labels(service, route, str(status))


async def serve(app: web.Application, host: str, port: int, drain_s: float, grace_s: float) -> None:
    """Run `app` until SIGTERM or SIGINT, then stop gracefully: not ready at once, still serving for
    `drain_s` (a load balancer notices and sends traffic elsewhere), then no new connections, the requests
    in flight finished (up to `grace_s`), and the app's resources closed."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=grace_s)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("%s serving on http://%s:%s", app[SERVICE], host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    app[STOPPING].set()
    log.info("stopping: not ready any more; serving %.1fs more while traffic moves away", drain_s)
    await asyncio.sleep(drain_s)  # the drain period itself: requests are still served meanwhile
    await runner.cleanup()
    log.info("stopped")


Middleware = Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                      Awaitable[web.StreamResponse]]


Resources = Callable[[web.Application], AsyncIterator[None]]


def service_app(service: str, settings: Settings, ready_check: ReadyCheck, resources: Resources | None = None,
                outer: tuple[Middleware, ...] = (), inner: tuple[Middleware, ...] = (),
                live_check: LiveCheck = lambda app: [],
                pipeline: Callable[[], dict[str, Any]] | None = None) -> web.Application:
    """An aiohttp application with bread's middleware and probe pages (and /pipeline, given how far behind the
    service runs), its settings, and the `resources` it opens at start and closes at stop.
    `outer` middleware sees every answer as sent (errors already JSON); `inner` may raise JsonError."""
    tracing_on = [traced] if tracing.on() else []
    app = web.Application(middlewares=[*tracing_on, *outer, errors_and_metrics, *inner], client_max_size=64 * 1024)
    app[SERVICE], app[SETTINGS] = service, settings
    if resources is not None:
        app.cleanup_ctx.append(resources)
    stopping = app[STOPPING] = asyncio.Event()
    probes.mount(app, probes.Probe(problems=lambda: ready_check(app), stopping=stopping.is_set,
                                   stalled=lambda: live_check(app), pipeline=pipeline), settings.bread_debug)
    return app
