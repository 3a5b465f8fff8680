"""pay's side of the saga: what it does for each saga event that reaches it — charge the payments the order edge
deferred (PAY_FALLBACK=defer), refund or void abandoned orders, note the ones the bakery confirmed, and announce
again what it decided for a stalled order. The ledger is pay's state and decides each at most once per order;
the runtime (agents/runtime/pay.py) consumes exactly these events, from the topics topics.yaml names."""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Awaitable, Callable

from agents.events import Event
from agents.pay.ledger import Ledger
from agents.pay.payments import APPLY, PaymentRefused, PaymentRequest

log = logging.getLogger(__name__)

SagaHandler = Callable[[Event], Awaitable[None]]
# The saga's compensations that reach pay: the order will not be baked, so its money goes back.
VOIDING_EVENTS = ("OrderRejected", "BakeryRejected", "BakeryTicketClosed")


async def take_time(delay: tuple[float, float]) -> None:
    """The provider's time of PAY_DELAY_MS (none by default), as the seed's pay slept in each request."""
    low, high = delay
    if high:
        await asyncio.sleep(random.uniform(low, high))


def saga_handlers(ledger: Ledger, delay: tuple[float, float], outbox_written: asyncio.Event) -> dict[str, SagaHandler]:
    """pay's handler of each saga event. The ledger decides each at most once per order, so the order these
    arrive in (and any redelivery) cannot charge or refund twice; its outbox announces every decision, again
    after a crash."""

    async def charge_deferred(event: Event) -> None:
        await take_time(delay)
        try:
            payment = await ledger.record(PaymentRequest(event["orderId"], event["price"], APPLY),
                                          event["correlationId"])
        except PaymentRefused as refused:  # voided meanwhile (cancelled, past its deadline): nothing to take
            log.info("deferred payment of order %s not taken: %s", event["orderId"], refused)
            return
        outcome = "charged" if payment.action == APPLY else f"declined ({payment.reason})"
        log.info("deferred payment of order %s: %s", event["orderId"], outcome if payment.created else "done before")
        outbox_written.set()

    async def note_confirmed(event: Event) -> None:
        await ledger.bakery_confirmed(event["orderId"])

    async def announce_again(event: Event) -> None:
        again = await ledger.announce_again(event["orderId"])
        log.warning("order %s stalled in %s: announcing its %d payment event(s) again", event["orderId"],
                    event["status"], again)
        outbox_written.set()

    async def void(event: Event) -> None:
        outcome = await ledger.void(event["orderId"], event["reason"], event["correlationId"])
        if outcome:
            log.info("order %s: %s after %s", event["orderId"], outcome, event["type"])
            outbox_written.set()

    return {"PaymentRequested": charge_deferred, "BakeryConfirmed": note_confirmed, "OrderStalled": announce_again,
            **{event_type: void for event_type in VOIDING_EVENTS}}
