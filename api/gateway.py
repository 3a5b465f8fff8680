"""The gateway (8088): one entry point that passes each request through to the service owning its path.

- Routes are the table below; targets come from each service's *_URL variable, timeouts per route.
- Bodies stream through in both directions; a target that is down answers 502, one that is too slow 504.
- Every request gets an X-Correlation-ID (the caller's or a new one) and X-Forwarded-For/-Host/-Proto, and
  leaves one JSON access-log line.
- GATEWAY_AUTH=on: every route wants `Authorization: Bearer <token>`; the token's principal and role decide
  by the access table (api/routes.py) — 403 with the reason when the role may not — and go on to the
  services as X-Principal and X-Principal-Role (orders are recorded with it, a customer sees only their own).
  Off by default, so the seed's calls work as written.
- The public API's OpenAPI document at /openapi.json (api/openapi.yaml), a Swagger UI page at /docs.
- bread's web page at / (api/web/: the customer's and the baker's views), and GET /me: who the token is.
- Event streams (a request that accepts text/event-stream) pass through with no total timeout: only the
  connection and each wait for more (at most twice STREAM_HEARTBEAT_S) are bounded.
- Bodies over GATEWAY_MAX_BODY_BYTES answer 413; a client over its rate (GATEWAY_RATE_LIMIT_RPS, a token
  bucket per customer, or per address without auth) answers 429 with Retry-After. Behind proxies listed in
  GATEWAY_TRUSTED_PROXIES (an ingress controller) the address is the client's from X-Forwarded-For.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import yaml
from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from agents import principals
from agents.correlation import HTTP_HEADER, current
from agents.idempotency import HEADER as IDEMPOTENCY_HEADER
from agents.settings import Networks, Settings
from api.admission import ADMITTED, ADMITTED_HEADER, admitted, watch_the_pipeline
from api.http import SETTINGS, STOPPING, AnswerBroken, JsonError, Resources, service_app
from api.routes import ROUTES, Route, check_access, route_of
from api.tokens import TokenBook

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")


# Swagger UI's files, from the swagger-ui-bundle package (the page works with no network to the outside).
DOCS_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
               "favicon-32x32.png": "image/png"}
# bread's web page, from api/web (package data).
PAGE_DIR = Path(__file__).with_name("web")
PAGE_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
OPEN_PATHS = {"/health", "/metrics", "/openapi.json", "/docs", "/",  # the gateway's own; no token, no rate limit
              *(f"/docs/{asset}" for asset in DOCS_ASSETS), *(f"/ui/{asset}" for asset in PAGE_ASSETS)}
OPENAPI = Path(__file__).with_name("openapi.yaml")  # package data, so it is in the image too
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bread API</title>
<link rel="icon" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""
WHOLE_ANSWER_BYTES = 1 << 20  # an answer this small with its length known is passed on whole, not in chunks
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
# Never passed on from the caller: the gateway alone says who is calling, and whose token it was.
STRIPPED = HOP_BY_HOP | {h.lower() for h in principals.HEADERS} | {"authorization", ADMITTED_HEADER.lower()}
HTTP = web.AppKey("http", aiohttp.ClientSession)
TOKENS = web.AppKey("tokens", TokenBook)
LIMITER = web.AppKey("limiter", "RateLimiter")
CLIENT = web.RequestKey("client", str)  # the request's caller, behind any trusted proxies
TARGETS = web.AppKey("targets", dict)
API_DOCUMENT = web.AppKey("api_document", dict)
PRINCIPAL = web.RequestKey("principal", principals.Principal)  # who the token stands for


class Targets:
    """The instances of one service. Requests go round-robin to those whose /health said ready when last
    asked (every GATEWAY_HEALTH_INTERVAL_S), as a Kubernetes Service sends only to ready pods; with none
    ready, to all of them. With a single instance (a Kubernetes Service URL) nothing is polled."""

    def __init__(self, service: str, urls: list[str]) -> None:
        self.service, self.urls = service, urls
        self.ready = set(urls)
        self._turn = 0

    def in_order(self) -> list[str]:
        """Every instance, the ready ones first, starting at the next one's turn."""
        self._turn = (self._turn + 1) % len(self.urls)
        rotated = self.urls[self._turn:] + self.urls[:self._turn]
        return [u for u in rotated if u in self.ready] + [u for u in rotated if u not in self.ready]

    async def watch(self, http: aiohttp.ClientSession, interval: float) -> None:
        while True:
            for url in self.urls:
                try:
                    async with http.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=interval)) as answer:
                        ok = answer.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                if ok != (url in self.ready):
                    log.info("%s at %s is %s", self.service, url, "ready" if ok else "not ready")
                (self.ready.add if ok else self.ready.discard)(url)
            await asyncio.sleep(interval)  # the polling period


class RateLimiter:
    """A token bucket per client: `rate` requests a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    def wait_for(self, client: str) -> float:
        """0 when the request may go now (and it is counted); else the seconds until it could."""
        now = self._clock()
        tokens, then = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            self._forget_idle(now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        # A bucket refilled to the brim is the same as no bucket: drop those, so the table stays small.
        if len(self._buckets) > 10_000:
            full_after = self.burst / self.rate
            self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < full_after}


def client_address(peer: str | None, forwarded_for: str | None, trusted: Networks) -> str:
    """Who is calling: the direct peer, unless it is a trusted proxy; then the nearest address in
    X-Forwarded-For (read from the right, as each proxy appends) that is not a trusted proxy itself. A client
    can put anything in the header, so only what trusted proxies appended counts."""
    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    client = peer or "unknown"
    if not trusted or not is_trusted(client):
        return client
    for hop in reversed([h.strip() for h in (forwarded_for or "").split(",") if h.strip()]):
        client = hop
        if not is_trusted(hop):
            break
    return client


def client_of(request: web.Request) -> str:
    """Whom the rate limit counts: the principal, or without authentication the client's address."""
    principal = request.get(PRINCIPAL)
    return principal.name if principal else request[CLIENT]


@web.middleware
async def log_access(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    # Outside the error middleware, so it sees the final status of every request, errors included.
    started = time.perf_counter()
    request[CLIENT] = client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                     request.app[SETTINGS].gateway_trusted_proxies)
    response = await handler(request)
    if not access_log.isEnabledFor(logging.INFO):
        return response
    access_log.info(orjson.dumps({
        "method": request.method, "path": request.path, "status": response.status,
        "durationMs": round((time.perf_counter() - started) * 1000, 1), "correlationId": current.get(),
        "client": request[CLIENT], **principal_fields(request.get(PRINCIPAL)),
    }).decode())
    return response


def principal_fields(principal: principals.Principal | None) -> dict[str, str]:
    return {"principal": principal.name, "role": principal.role} if principal else {}


@web.middleware
async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Authentication, the role's rights, the body limit and the rate limit, in that order, before anything is
    forwarded."""
    if request.path in OPEN_PATHS:
        return await handler(request)
    tokens = request.app[TOKENS]
    if tokens is not None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        principal = tokens.principal_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if principal is None:
            raise JsonError(401, "a valid bearer token is required (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": 'Bearer realm="bread"'})
        request[PRINCIPAL] = principal
        check_access(request.method, request.path, principal)
    limit = request.app[SETTINGS].gateway_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise JsonError(413, f"the body is {request.content_length} bytes; at most {limit} are taken")
    limiter = request.app[LIMITER]
    if limiter is not None:
        wait = limiter.wait_for(client_of(request))
        if wait:
            raise JsonError(429, f"too many requests from {client_of(request)}; slow down",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return await handler(request)


class LimitedBody:
    """The request body as it streams in, cut off past `limit` (a chunked body announces no length). The
    client library reports the cut as a broken connection; `exceeded` tells the two apart, and `started`
    whether any of it was sent (a request not sent at all may go to another instance)."""

    def __init__(self, body: aiohttp.StreamReader, limit: int) -> None:
        self.body, self.limit, self.exceeded, self.started = body, limit, False, False

    async def chunks(self) -> AsyncIterator[bytes]:
        seen = 0
        self.started = True
        async for chunk in self.body.iter_any():
            seen += len(chunk)
            if seen > self.limit:
                self.exceeded = True
                raise ValueError(f"the body is over {self.limit} bytes")
            yield chunk


async def resources(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=500), auto_decompress=False)
    interval = app[SETTINGS].gateway_health_interval_s
    watchers = [asyncio.create_task(targets.watch(app[HTTP], interval))
                for targets in app[TARGETS].values() if len(targets.urls) > 1 and interval > 0]
    yield
    for watcher in watchers:
        watcher.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    await app[HTTP].close()


def forward_headers(request: web.Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in STRIPPED}
    headers[HTTP_HEADER] = current.get()  # the caller's, or the one the gateway assigned
    if request.get(PRINCIPAL):
        headers.update(request[PRINCIPAL].headers())
    if request.get(ADMITTED):
        headers[ADMITTED_HEADER] = "gateway"
    headers["X-Forwarded-Host"] = request.headers.get("X-Forwarded-Host", request.host)
    headers["X-Forwarded-Proto"] = request.headers.get("X-Forwarded-Proto", request.scheme)
    if request.remote:
        headers["X-Forwarded-For"] = ", ".join(filter(None, [request.headers.get("X-Forwarded-For"), request.remote]))
    return headers


async def pass_through(request: web.Request) -> web.StreamResponse:
    route = route_of(request.path)
    if route is None:
        raise JsonError(404, f"no route for {request.path}; routes: {', '.join(r.prefix for r in ROUTES)}")
    if request.method == "POST" and request.path == "/orders" and IDEMPOTENCY_HEADER not in request.headers:
        # New orders wait their turn here, or are refused here: a busy bread spends no second hop on them. A keyed
        # request goes on (the edge answers one placed before however busy bread is).
        async with admitted(request):
            return await pass_on(request, route)
    return await pass_on(request, route)


async def pass_on(request: web.Request, route: Route) -> web.StreamResponse:
    """The request passed to an instance of its route's service: the next one if one is unreachable."""
    targets: Targets = request.app[TARGETS][route.service]
    settings = request.app[SETTINGS]
    body: bytes | LimitedBody | None = None
    if request.content_length is not None:  # within the limit (the guard saw to it): passed on as it came
        body = await request.read() if request.body_exists else None
    elif request.body_exists:
        body = LimitedBody(request.content, settings.gateway_max_body_bytes)
    timeout = settings.gateway_timeout(route.prefix)
    if "text/event-stream" in request.headers.get("Accept", ""):
        # A stream lasts as long as its watcher: its heartbeat, not a total, shows it is alive.
        limits = aiohttp.ClientTimeout(total=None, sock_connect=timeout,
                                       sock_read=2 * settings.stream_heartbeat_s + timeout)
    else:
        limits = aiohttp.ClientTimeout(total=timeout)
    instances = targets.in_order()
    for attempt, instance in enumerate(instances, 1):
        try:
            return await forward(request, f"{instance}{request.rel_url}", body, limits)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(body, LimitedBody) and body.started or attempt == len(instances):
                raise JsonError(502, f"{route.service} is unreachable: {exc}", service=route.service) from None
            # Nothing reached this instance (it is stopping or gone): the next one takes the request.
            targets.ready.discard(instance)
        except asyncio.TimeoutError:
            raise JsonError(504, f"{route.service} did not answer within {timeout}s", service=route.service) from None
        except (aiohttp.ClientError, ValueError) as exc:
            if isinstance(body, LimitedBody) and body.exceeded:
                raise JsonError(413, f"the body is over {request.app[SETTINGS].gateway_max_body_bytes} bytes") from None
            if isinstance(exc, aiohttp.ClientConnectionError):
                raise JsonError(502, f"{route.service} broke off: {exc}", service=route.service) from None
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


async def forward(request: web.Request, url: str, body: bytes | LimitedBody | None,
                  timeout: aiohttp.ClientTimeout) -> web.StreamResponse:
    async with request.app[HTTP].request(
        request.method, url, headers=forward_headers(request),
        data=body.chunks() if isinstance(body, LimitedBody) else body, timeout=timeout, allow_redirects=False,
    ) as upstream:
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        if upstream.content_type != "text/event-stream" and upstream.content_length is not None \
                and upstream.content_length <= WHOLE_ANSWER_BYTES:
            try:
                return web.Response(body=await upstream.read(), status=upstream.status, headers=headers)
            except aiohttp.ClientError as exc:  # nothing was answered yet: a 502 can still say so
                raise aiohttp.ClientConnectionError(f"{url} broke off mid-answer: {exc}") from exc
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(request)
        chunks = until_stopping(upstream.content, request.app[STOPPING]) \
            if upstream.content_type == "text/event-stream" else upstream.content.iter_any()
        try:
            async for chunk in chunks:
                try:
                    await response.write(chunk)
                except ConnectionResetError:
                    return response  # the caller left: how an event stream usually ends
            await response.write_eof()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise AnswerBroken(f"{url} broke off mid-answer: {exc}") from exc
        return response


async def until_stopping(content: aiohttp.StreamReader, stopping: asyncio.Event) -> AsyncIterator[bytes]:
    """An event stream's chunks until it ends, or until the gateway begins to stop: its watchers reconnect then,
    to an instance that stays (a stream would otherwise hold the stop up for as long as it lasts)."""
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            read = asyncio.ensure_future(content.readany())
            await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not read.done():
                read.cancel()
                return
            chunk = read.result()
            if not chunk:
                return
            yield chunk
    finally:
        stopped.cancel()


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[API_DOCUMENT])


async def docs(_: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name not in DOCS_ASSETS:
        raise JsonError(404, f"no such file of the API docs: {name}")
    return web.FileResponse(swagger_ui_path / name, headers={"Content-Type": DOCS_ASSETS[name],
                                                             "Cache-Control": "public, max-age=86400"})


async def page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8",
                                                              "Cache-Control": "no-cache"})


async def page_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name not in PAGE_ASSETS:
        raise JsonError(404, f"no such file of the web page: {name}")
    return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": PAGE_ASSETS[name], "Cache-Control": "no-cache"})


async def me(request: web.Request) -> web.Response:
    """Who the caller's token stands for (the page shows each role its view)."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        return web.json_response({"authentication": "off"})
    return web.json_response({"authentication": "on", "principal": principal.name, "role": principal.role})


async def ready(app: web.Application) -> list[str]:
    return [] if HTTP in app else ["HTTP client not started"]


def init_app(settings: Settings, watch: Resources = watch_the_pipeline) -> web.Application:
    """The gateway; `watch` opens its watch on how far behind the contexts run (a fake, in tests)."""
    app = service_app("gateway", settings, ready, resources, outer=(log_access,), inner=(guard,))
    app.cleanup_ctx.append(watch)
    app[TOKENS] = TokenBook(settings.tokens_path) if settings.gateway_auth else None
    rate = settings.gateway_rate_limit_rps
    app[LIMITER] = RateLimiter(rate, settings.rate_limit_burst) if rate > 0 else None
    app[TARGETS] = {route.service: Targets(route.service, list(settings.service_urls(route.service)))
                    for route in ROUTES}
    app[API_DOCUMENT] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/{asset}", docs_asset)
    app.router.add_get("/", page)
    app.router.add_get("/ui/{asset}", page_asset)
    app.router.add_get("/me", me)
    app.router.add_route("*", "/{tail:.*}", pass_through)
    return app
