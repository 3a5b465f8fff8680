"""The gateway's proxy: each request passed through to an instance of the service owning its path.

- Routes are api/routes.py's table; targets come from each service's *_URL variable, timeouts per route. With
  several instances of a service, requests go round-robin to the ready ones (`Targets`).
- Bodies stream through in both directions; a target that is down answers 502, one that is too slow 504.
- Every request goes on with an X-Correlation-ID (the caller's or a new one) and X-Forwarded-For/-Host/-Proto.
- Event streams (a request that accepts text/event-stream) pass through with no total timeout: only the
  connection and each wait for more (at most twice STREAM_HEARTBEAT_S) are bounded.
- A route may have a hook around its passing on (`HOOKS`, by method and path): the order routes' admission.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager
from typing import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from agents import principals
from agents.correlation import HTTP_HEADER, current
from agents.runtime import tracing
from api.admission import ADMITTED, ADMITTED_HEADER
from api.gateway.guard import PRINCIPAL
from api.http import SETTINGS, STOPPING, AnswerBroken, JsonError
from api.routes import ROUTES, Route, route_of

log = logging.getLogger(__name__)

WHOLE_ANSWER_BYTES = 1 << 20  # an answer this small with its length known is passed on whole, not in chunks
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
# Never passed on from the caller: the gateway alone says who is calling, and whose token it was.
STRIPPED = HOP_BY_HOP | {h.lower() for h in principals.HEADERS} | {"authorization", ADMITTED_HEADER.lower()}
HTTP = web.AppKey("http", aiohttp.ClientSession)
TARGETS = web.AppKey("targets", dict)
Hook = Callable[[web.Request], AbstractAsyncContextManager[None]]
HOOKS = web.AppKey("hooks", dict)  # (method, path) -> Hook


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
    headers.update(tracing.http_headers())  # while tracing, the target's span is a child of the gateway's
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
    tracing.name_route(f"{request.method} {route.prefix}", route.prefix)
    hook = request.app[HOOKS].get((request.method, request.path))
    if hook is None:
        return await pass_on(request, route)
    async with hook(request):
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
