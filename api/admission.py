"""The door new orders come in by (agents/order/admission.py), for the HTTP faces that take them: the order edge,
and the gateway in front of it — which holds or refuses a new order itself, so a busy bread spends no second hop
on an order it cannot take yet.

`watch_the_pipeline` opens what the door needs (a watch asking the contexts how far behind they run, telling the
door each time) in an app's cleanup context; `async with admitted(request):` enters at the caller's turn and tells the
door how long the placement inside took, or refuses the new order with 503, Retry-After and the reason.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from agents.order.admission import Busy, Door, DoorSettings
from agents.runtime.metrics import ADMISSION_LATE, ADMISSION_RATE, ADMISSION_WAIT, ORDERS_REFUSED_BUSY
from agents.runtime.pipeline import PipelineWatch
from api.http import SETTINGS, JsonError

DOOR = web.AppKey("door", Door)
# A new order the gateway's door let in: the edge behind it lets it in at once (a second door in a row would only
# hold it again, and its wait would look to the first like an edge slow to place orders). The gateway drops this
# header from what callers send, and only the gateway may call the edge (the NetworkPolicies in
# k8s/base/workloads.yaml).
ADMITTED_HEADER = "X-Bread-Admitted"
ADMITTED = web.RequestKey("admitted", bool)
DOWNSTREAM = ("order-worker", "bakery", "mypage")  # the contexts an order's saga waits on


def door_of(app: web.Application) -> Door:
    """The app's door, from its settings."""
    settings = app[SETTINGS]
    door = Door(DoorSettings(settings.order_shed_from_s, settings.order_shed_all_s, settings.order_admission_wait_s))
    ADMISSION_RATE.set_function(lambda: door.rate)
    ADMISSION_LATE.set_function(lambda: door.late_s)
    return door


async def watch_the_pipeline(app: web.Application) -> AsyncIterator[None]:
    """With ORDER_ADMISSION on: the door, and a watch asking the contexts how far behind they run."""
    settings = app[SETTINGS]
    if not settings.order_admission:
        yield
        return
    async with aiohttp.ClientSession() as http:
        app[DOOR] = door_of(app)
        pipeline = PipelineWatch(http, {c: settings.service_url(c) for c in DOWNSTREAM},
                                 settings.order_admission_poll_s)
        watching = asyncio.create_task(pipeline.run(app[DOOR].heard))
        yield
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


@contextlib.asynccontextmanager
async def admitted(request: web.Request, at_the_edge: bool = False) -> AsyncIterator[None]:
    """Enter at this new order's turn, and tell the door how long placing it took; refuse it with 503 when the door
    is closed or its turn would come too late. At the edge, an order the gateway let in enters at once, and placing
    is not timed."""
    door = request.app.get(DOOR)
    if door is None or at_the_edge and request.headers.get(ADMITTED_HEADER) == "gateway":
        yield
        return
    try:
        wait = door.turn()
    except Busy as exc:
        ORDERS_REFUSED_BUSY.inc()
        raise JsonError(503, str(exc), headers={"Retry-After": str(exc.retry_after)},
                        retryAfterS=exc.retry_after) from None
    ADMISSION_WAIT.observe(wait)
    if wait:
        await asyncio.sleep(wait)  # the turn the door gave: the pace itself, not a stand-in for a condition
    request[ADMITTED] = True
    if at_the_edge:  # placing there is mostly the wait for pay, whose bulkhead holds callers itself: two queues
        yield        # judging the same wait swung the door (docs/performance.md); it follows the contexts alone
        return
    started = time.monotonic()
    try:
        yield
    finally:
        door.placed(time.monotonic() - started)
