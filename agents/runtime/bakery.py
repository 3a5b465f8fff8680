"""The bakery worker: opens a ticket for every approved payment, closes it when the order is cancelled or
refunded, and applies the baker's decisions — all in one line per ticket, so no two of them both win.

Outputs follow from state: after every input about a ticket the worker sends everything the ticket says was
decided (with ids derived from the ticket), so an input seen again after a crash ends with the same events
sent, whether or not the first attempt's events reached the broker.
"""
from __future__ import annotations

import asyncio

from agents.bakery.tickets import OWN_EVENTS, react
from agents.events import Event
from agents.runtime.worker import Worker, record

worker = Worker("bakery")
tickets = worker.table()


# The bakers' requests (POST /bakeries) waiting for their decision to be applied, by the decision's event id.
awaited_decisions: dict[str, asyncio.Future] = {}


async def on_event(event: Event) -> None:
    key = str(event["orderId"])
    before = tickets.get(key)
    changed, said = react(before, event, worker.settings.bakery_auto_confirm)
    record(tickets, key, changed or before)
    for announcement in said:
        await worker.emit(announcement)
    waiting = awaited_decisions.pop(event["eventId"], None)
    if waiting is not None and not waiting.done():
        waiting.set_result(changed or before)


worker.consume({event_type: on_event for event_type in (
    "PayApproved", "PayCanceled", "OrderCancelled", "OrderStalled", "BakerDecided", *OWN_EVENTS)})
