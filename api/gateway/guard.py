"""Who may pass the gateway, and how often: bearer tokens and the role's rights, the body limit, the rate limit,
and the JSON access log of every request.

- GATEWAY_AUTH=on: every route wants `Authorization: Bearer <token>`; the token's principal and role decide
  by the access table (api/routes.py) — 403 with the reason when the role may not — and go on to the
  services as X-Principal and X-Principal-Role (orders are recorded with it, a customer sees only their own).
  Off by default, so the seed's calls work as written. GET /me tells who the token is.
- Bodies over GATEWAY_MAX_BODY_BYTES answer 413; a client over its rate (GATEWAY_RATE_LIMIT_RPS, a token
  bucket per customer, or per address without auth) answers 429 with Retry-After. Behind proxies listed in
  GATEWAY_TRUSTED_PROXIES (an ingress controller) the address is the client's from X-Forwarded-For.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import time
from typing import Awaitable, Callable

from aiohttp import web

from agents import principals
from agents.correlation import current
from agents.runtime.logs import FIELDS
from agents.settings import Networks
from api.gateway.pages import OPEN_PAGES
from api.http import SETTINGS, JsonError
from api.routes import check_access
from api.tokens import TokenBook

access_log = logging.getLogger("gateway.access")

OPEN_PATHS = {"/health", "/metrics", *OPEN_PAGES}  # the gateway's own; no token, no rate limit
TOKENS = web.AppKey("tokens", TokenBook)
LIMITER = web.AppKey("limiter", "RateLimiter")
CLIENT = web.RequestKey("client", str)  # the request's caller, behind any trusted proxies
PRINCIPAL = web.RequestKey("principal", principals.Principal)  # who the token stands for


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
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status, took_ms, extra={FIELDS: {
        "method": request.method, "path": request.path, "status": response.status, "durationMs": took_ms,
        "correlationId": current.get(), "client": request[CLIENT], **principal_fields(request.get(PRINCIPAL)),
    }})
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


async def me(request: web.Request) -> web.Response:
    """Who the caller's token stands for (the page shows each role its view)."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        return web.json_response({"authentication": "off"})
    return web.json_response({"authentication": "on", "principal": principal.name, "role": principal.role})
