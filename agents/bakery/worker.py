"""The bakery worker: opens a ticket for every approved payment and records the baker's decisions."""
from __future__ import annotations

from typing import Any

from agents import config
from agents.bakery.tickets import CONFIRMED, after_event, close_on_cancel, close_on_refund, open_ticket
from agents.events import Event, make_event
from agents.worker import Worker

worker = Worker("bakery")
tickets = worker.table()


def auto_confirm() -> bool:
    return config.env_bool("BAKERY_AUTO_CONFIRM", False)


async def on_pay_approved(event: Event) -> None:
    key = str(event["orderId"])
    if tickets.get(key) is not None:
        return
    correlation = event["correlationId"]
    ticket = open_ticket(event["orderId"], correlation)
    await worker.emit(make_event("BakeryTicketOpened", correlation_id=correlation, cause=event,
                                 orderId=ticket["orderId"], bakeryId=ticket["bakeryId"]))
    if auto_confirm():
        await worker.emit(make_event("BakeryConfirmed", correlation_id=correlation, cause=event,
                                     orderId=ticket["orderId"], bakeryId=ticket["bakeryId"]))
        ticket = {**ticket, "status": CONFIRMED}
    tickets[key] = ticket


async def close_ticket(event: Event, closed: dict[str, Any] | None, reason: str) -> None:
    if closed is None:
        return
    await worker.emit(make_event("BakeryTicketClosed", correlation_id=event["correlationId"], cause=event,
                                 orderId=closed["orderId"], bakeryId=closed["bakeryId"], reason=reason))
    tickets[str(event["orderId"])] = closed


async def on_pay_canceled(event: Event) -> None:
    await close_ticket(event, close_on_refund(tickets.get(str(event["orderId"]))), "payment refunded")


async def on_order_cancelled(event: Event) -> None:
    await close_ticket(event, close_on_cancel(tickets.get(str(event["orderId"])), event["orderId"]), event["reason"])


async def on_own_event(event: Event) -> None:
    key = str(event["orderId"])
    updated = after_event(tickets.get(key), event)
    if updated is not None:
        tickets[key] = updated


worker.consume({
    "PayApproved": on_pay_approved,
    "PayCanceled": on_pay_canceled,
    "OrderCancelled": on_order_cancelled,
    "BakeryTicketOpened": on_own_event,
    "BakeryConfirmed": on_own_event,
    "BakeryRejected": on_own_event,
    "BakeryTicketClosed": on_own_event,
})
