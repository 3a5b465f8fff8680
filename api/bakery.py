"""The baker's face (8082), Faust web views over the bakery tickets: the tickets waiting for the baker, one
ticket, the baker's decision on it, and the live stream of the tickets' changes."""
import asyncio
import json
from typing import Any

import aiohttp
from faust.web import Request, Response

from agents.bakery.tickets import (
    Ticket,
    applied,
    decide,
    first_waiting,
    has_ticket,
    parse_decision,
    ticket_of,
    waiting_tickets,
)
from agents.correlation import HTTP_HEADER, carried
from agents.events import new_correlation_id
from agents.runtime.bakery import BakeryAgents, DecisionNotApplied
from agents.runtime.context_app import ContextApp
from agents.runtime.rows import Rows
from agents.settings import Settings
from api.faustweb import GuardedView, forward_to_owner, gather, serve_changes, serve_rows
from api.http import JsonError

DECISION_WAIT_S = 5.0
MAX_WAITING_SHOWN = 1000


def _size(request: Request) -> int:
    try:
        size = int(request.query.get("size", 100))
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_WAITING_SHOWN:
        raise ValueError(f"'size' must be a whole number from 1 to {MAX_WAITING_SHOWN}")
    return size


def build(settings: Settings) -> ContextApp:
    """The bakery worker with its web views."""
    bakery = BakeryAgents(settings)
    app, tickets = bakery.context_app.app, bakery.tickets

    @app.page("/bakeries")
    class BakeryDecision(GuardedView):
        async def get(self, request: Request) -> Response:
            """The tickets waiting longest for the baker's decision, from every bakery worker."""
            try:
                size = _size(request)
            except ValueError as exc:
                raise JsonError(400, str(exc)) from None
            if request.query.get("scope") == "local":  # another bakery worker gathering the list
                return self.json(waiting_in(tickets, size))
            try:
                gathered = await gather(app, tickets, request, {"size": str(size)}, lambda: waiting_in(tickets, size))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise JsonError(503, f"a bakery worker is unavailable: {exc or 'timeout'}") from None
            first, total = first_waiting(((list(map(Ticket.from_json, share["rows"])), share["total"])
                                          for share in gathered), size)
            return self.json({"tickets": [ticket.to_json() for ticket in first], "total": total})

        async def post(self, request: Request) -> Response:
            body = await self.read_request_content(request)
            try:
                decision = json.loads(body)
            except ValueError as exc:
                raise JsonError(400, f"the body is not valid JSON: {exc}") from None
            order_id, status, reason = parse_decision(decision)  # a refusal is answered as every face answers it
            forwarded = await forward_to_owner(app, tickets, str(order_id), request, body)
            if forwarded is not None:
                return forwarded
            ticket = ticket_of(tickets.get(str(order_id)))
            if not decide(ticket, order_id, status):  # the ticket has this decision already
                return self.json(ticket.to_json())
            # The decision belongs to the order's saga, not to the baker's request.
            correlation = ticket.correlation_id or carried(request.headers.get(HTTP_HEADER)) or new_correlation_id()
            try:
                after = await bakery.decide(order_id, status, reason, correlation, DECISION_WAIT_S)
            except DecisionNotApplied:
                raise JsonError(503, f"the decision on order {order_id} was sent but not applied within "
                                f"{DECISION_WAIT_S:.0f}s; GET /bakeries/{order_id} shows when it is") from None
            return self.json(applied(after, order_id, status).to_json())

    # Tickets are the bakers' business: whoever may reach the route sees them all.
    serve_changes(app, bakery.context_app.feed(tickets), "/bakeries/stream", settings.stream_heartbeat_s,
                  lambda row, _principal: not row or has_ticket(Ticket.from_json(row)),  # (a deletion: {})
                  lambda row, _: row)
    serve_rows(app, tickets, "/bakeries/{orderId}", "no bakery ticket for order {orderId}", shown,
               customers_own_rows=False)
    return bakery.context_app


def shown(row: dict[str, Any], _: Request) -> dict[str, Any]:
    """A ticket as the bakers see it; an order the bakery knows but nobody paid for yet has none."""
    if not has_ticket(Ticket.from_json(row)):
        raise JsonError(404, f"no bakery ticket for order {row['orderId']}: it is not paid yet")
    return row


def waiting_in(tickets: Rows, size: int) -> dict[str, Any]:
    """The tickets of this worker's partitions waiting longest, and how many wait here (a worker's share)."""
    rows, total = waiting_tickets(map(Ticket.from_json, tickets.values()), size)
    return {"rows": [ticket.to_json() for ticket in rows], "total": total}
