"""The gateway (8088): one entry point that passes each request through to the service owning its path.

Bodies stream through in both directions; a target that is down answers 502, one that is too slow 504,
both with a JSON error.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from agents import config
from agents.correlation import HTTP_HEADER, current
from api.http import JsonError, service_app

# Path prefix -> the service that owns it. Targets come from each service's *_URL variable.
ROUTES = {"/orders": "order", "/payments": "pay", "/bakeries": "bakery", "/mypages": "mypage",
          "/order-requests": "order-worker"}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
HTTP = web.AppKey("http", aiohttp.ClientSession)


def gateway_timeout() -> float:
    return config.env_float("GATEWAY_TIMEOUT_S", 10.0)


def target_of(path: str) -> str | None:
    for prefix, service in ROUTES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


async def resources(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=500), auto_decompress=False)
    yield
    await app[HTTP].close()


def forward_headers(request: web.Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    headers[HTTP_HEADER] = current.get()  # the caller's, or the one the gateway assigned
    headers["X-Forwarded-Host"] = request.headers.get("X-Forwarded-Host", request.host)
    headers["X-Forwarded-Proto"] = request.headers.get("X-Forwarded-Proto", request.scheme)
    if request.remote:
        headers["X-Forwarded-For"] = ", ".join(filter(None, [request.headers.get("X-Forwarded-For"), request.remote]))
    return headers


async def pass_through(request: web.Request) -> web.StreamResponse:
    service = target_of(request.path)
    if service is None:
        raise JsonError(404, f"no route for {request.path}; routes: {', '.join(ROUTES)}")
    url = f"{config.service_url(service)}{request.rel_url}"
    try:
        async with request.app[HTTP].request(
            request.method, url, headers=forward_headers(request),
            data=request.content if request.body_exists else None,
            timeout=aiohttp.ClientTimeout(total=gateway_timeout()), allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except asyncio.TimeoutError:
        raise JsonError(504, f"{service} did not answer within {gateway_timeout()}s", service=service) from None
    except aiohttp.ClientConnectionError as exc:
        raise JsonError(502, f"{service} is unreachable: {exc}", service=service) from None


async def ready(app: web.Application) -> list[str]:
    return [] if HTTP in app else ["HTTP client not started"]


def init_app() -> web.Application:
    app = service_app("gateway", ready)
    app.cleanup_ctx.append(resources)
    app.router.add_route("*", "/{tail:.*}", pass_through)
    return app
