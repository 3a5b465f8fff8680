"""The probe pages every bread process answers, the aiohttp services and the Faust workers alike (a Faust
worker's web server is an aiohttp application too, and they are mounted on it as they are):

- GET /health is readiness: 200 only while the process can do its work and is not stopping, else 503 with the
  problems (a worker without partitions or still recovering its tables; a service whose ready check fails).
- GET /live is liveness: it answers at once unless a consumer has stopped making progress while it has lag
  (503); when the event loop itself is stuck it cannot answer at all, and the probe times out.
- GET /metrics: the Prometheus metrics of the process.
- GET /pipeline, where the process follows events: how far behind it runs, for the admission rule at the order
  edge and the gateway (internal: the gateway routes no such path).
- BREAD_DEBUG=on adds the switches that make a process unhealthy on purpose (agents/debugging.py):
  POST /debug/block-loop?seconds=N, and where the process can hold its handling, /debug/stall-consumer?seconds=N.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from agents import debugging


@dataclass(frozen=True)
class Probe:
    """What a process's probe pages ask of it."""
    problems: Callable[[], Awaitable[list[str]]]  # what keeps it from doing its work now (none: ready)
    stopping: Callable[[], bool]                   # it is shutting down: not ready, whatever else holds
    stalled: Callable[[], list[str]] = lambda: []  # why it is not alive (none: alive)
    pipeline: Callable[[], dict[str, Any]] | None = None  # how far behind it runs, where it follows events
    hold_handling: Callable[[float], None] | None = None  # handle no event for so many seconds (a debug switch)


PROBE = web.AppKey("probe", Probe)


def mount(app: web.Application, probe: Probe, debug: bool) -> None:
    """Add the probe pages to `app`; with `debug`, the switches too."""
    app[PROBE] = probe
    app.router.add_get("/health", health)
    app.router.add_get("/live", live)
    app.router.add_get("/metrics", metrics)
    if probe.pipeline is not None:
        app.router.add_get("/pipeline", pipeline)
    if debug:
        app.router.add_post("/debug/block-loop", block_loop)
        if probe.hold_handling is not None:
            app.router.add_post("/debug/stall-consumer", stall_consumer)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    probe = request.app[PROBE]
    if probe.stopping():
        return _json({"status": "stopping", "problems": ["shutting down"]}, 503)
    problems = await probe.problems()
    if problems:
        return _json({"status": "starting", "problems": problems}, 503)
    return _json({"status": "ready"})


async def live(request: web.Request) -> web.Response:
    problems = request.app[PROBE].stalled()
    if problems:
        return _json({"status": "stalled", "problems": problems}, 503)
    return _json({"status": "alive"})


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def pipeline(request: web.Request) -> web.Response:
    return _json(request.app[PROBE].pipeline())


def _switch(turn_on: Callable[[web.Request, float], dict[str, float]]) -> Callable[[web.Request],
                                                                                    Awaitable[web.Response]]:
    async def switch(request: web.Request) -> web.Response:
        try:
            seconds = debugging.seconds_of(request.query.get("seconds"))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(turn_on(request, seconds))
    return switch


def _block_loop(_: web.Request, seconds: float) -> dict[str, float]:
    debugging.block_event_loop(seconds)
    return {"blocked": seconds}


def _stall_consumer(request: web.Request, seconds: float) -> dict[str, float]:
    request.app[PROBE].hold_handling(seconds)
    return {"stalled": seconds}


block_loop = _switch(_block_loop)
stall_consumer = _switch(_stall_consumer)
