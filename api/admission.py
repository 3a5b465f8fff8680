"""The admission rule at the door (agents/order/admission.py), for the HTTP faces that take new orders: the order
edge, and the gateway in front of it — which refuses at once what the edge would refuse, so a busy bread does
not spend a second hop on each order it cannot take.

`admitting(settings)` opens what the rule needs (a watch on how far behind the contexts run) in an app's
cleanup context; `admit(app)` refuses a new order with 503, Retry-After and the reason.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from agents.order.admission import Admission, Busy, check_admitted
from agents.runtime.metrics import ORDERS_REFUSED_BUSY
from agents.runtime.pipeline import PipelineWatch
from api.http import SETTINGS, JsonError

ADMISSION = web.AppKey("admission", Admission)
PIPELINE = web.AppKey("pipeline", PipelineWatch)
DOWNSTREAM = ("order-worker", "bakery", "mypage")  # the contexts an order's saga waits on


async def watch_the_pipeline(app: web.Application) -> AsyncIterator[None]:
    """With ORDER_ADMISSION on: the rule, and a watch asking the contexts how far behind they run."""
    settings = app[SETTINGS]
    if not settings.order_admission:
        yield
        return
    async with aiohttp.ClientSession() as http:
        app[ADMISSION] = Admission(settings.order_shed_from_s, settings.order_shed_all_s)
        app[PIPELINE] = PipelineWatch(http, {c: settings.service_url(c) for c in DOWNSTREAM},
                                      settings.order_admission_poll_s)
        watching = asyncio.create_task(app[PIPELINE].run())
        yield
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


def admit(app: web.Application) -> None:
    """Refuse a new order with 503 while the saga runs too far behind to see it through in time."""
    if ADMISSION not in app:
        return
    try:
        check_admitted(app[ADMISSION], app[PIPELINE].delay(), random.random())
    except Busy as exc:
        ORDERS_REFUSED_BUSY.inc()
        raise JsonError(503, str(exc), headers={"Retry-After": str(exc.retry_after)},
                        retryAfterS=exc.retry_after) from None
