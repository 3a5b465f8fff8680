"""The bakery worker: opens a ticket for every approved payment, closes it when the order is cancelled or
refunded, and applies the baker's decisions — all in one line per ticket, so no two of them both win.

Outputs follow from state: after every input about a ticket the worker sends everything the ticket says was
decided (with ids derived from the ticket), so an input seen again after a crash ends with the same events
sent, whether or not the first attempt's events reached the broker.
"""
from __future__ import annotations

import asyncio

from agents.bakery.tickets import Ticket, react, rules, ticket_of
from agents.events import Event, make_event
from agents.runtime.context_app import ContextApp
from agents.settings import Settings


class DecisionNotApplied(Exception):
    """The baker's decision was sent, but the bakery worker did not apply it in time."""


class BakeryAgents:
    """The bakery context on Kafka, built from the settings: its ticket table and its one agent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context_app = ContextApp("bakery", settings)
        self.tickets = self.context_app.table()
        # The bakers' requests (POST /bakeries) waiting for their decision to be applied, by the decision's id.
        self._awaited_decisions: dict[str, asyncio.Future] = {}
        self.rules = rules(settings.bakery_auto_confirm)
        self.context_app.consume(dict.fromkeys(self.rules, self.on_event))

    async def on_event(self, event: Event) -> None:
        key = str(event["orderId"])
        before = ticket_of(self.tickets.get(key))
        changed, said = react(self.rules, before, event)
        if changed is not None:
            self.tickets[key] = changed.to_json()
        for announcement in said:
            await self.context_app.emit(announcement)
        waiting = self._awaited_decisions.pop(event["eventId"], None)
        if waiting is not None and not waiting.done():
            waiting.set_result(changed or before)

    async def decide(self, order_id: int, decision: str, reason: str | None, correlation: str,
                     within_s: float) -> Ticket | None:
        """Hand the baker's decision to the worker and return the ticket once it is applied — in line with the
        ticket's other events, so a cancel that came first wins. Raises DecisionNotApplied after `within_s`."""
        because = {"reason": reason} if reason else {}
        decided = make_event("BakerDecided", correlation_id=correlation, orderId=order_id, decision=decision,
                             **because)
        applied = asyncio.get_running_loop().create_future()
        self._awaited_decisions[decided["eventId"]] = applied
        try:
            await self.context_app.emit(decided)
            return await asyncio.wait_for(applied, within_s)
        except asyncio.TimeoutError:
            raise DecisionNotApplied() from None
        finally:
            self._awaited_decisions.pop(decided["eventId"], None)
