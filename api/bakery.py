"""The baker's face (8082), Faust web views over the bakery tickets: see a ticket, confirm it."""
import asyncio
import json

from faust.web import Request, Response

from agents.bakery.tickets import DecisionRefused, check_decision, decide
from agents.runtime.bakery import awaited_decisions, tickets, worker
from agents.correlation import HTTP_HEADER, carried
from agents.events import make_event, new_correlation_id
from api.faustweb import GuardedView, error, forward_to_owner, serve_rows

app = worker.app
DECISION_WAIT_S = 5.0


@app.page("/bakeries")
class BakeryDecision(GuardedView):
    async def post(self, request: Request) -> Response:
        body = await self.read_request_content(request)
        try:
            decision = json.loads(body)
        except ValueError as exc:
            return error(self, 400, f"the body is not valid JSON: {exc}")
        try:
            order_id, status, reason = check_decision(decision)
        except DecisionRefused as exc:
            return error(self, exc.status, str(exc))
        forwarded = await forward_to_owner(app, tickets, str(order_id), request, body)
        if forwarded is not None:
            return forwarded
        ticket = tickets.get(str(order_id))
        try:
            announce = decide(ticket, order_id, status)
        except DecisionRefused as exc:
            return error(self, exc.status, str(exc))
        if not announce:  # the ticket has this decision already
            return self.json(ticket)
        return await self.decided(ticket, order_id, status, reason, request)

    async def decided(self, ticket: dict, order_id: int, status: str, reason: str | None,
                      request: Request) -> Response:
        """Hand the decision to the bakery worker and answer with the ticket once it is applied: in line with
        the ticket's other events, so a cancel that came first wins and the decision is refused (409)."""
        # The decision belongs to the order's saga, not to the baker's request.
        correlation = ticket.get("correlationId") or carried(request.headers.get(HTTP_HEADER)) or new_correlation_id()
        because = {"reason": reason} if reason else {}
        decision = make_event("BakerDecided", correlation_id=correlation, orderId=order_id, decision=status, **because)
        applied = asyncio.get_running_loop().create_future()
        awaited_decisions[decision["eventId"]] = applied
        try:
            await worker.emit(decision)
            after = await asyncio.wait_for(applied, DECISION_WAIT_S)
        except asyncio.TimeoutError:
            return error(self, 503, f"the decision on order {order_id} was sent but not applied within "
                                    f"{DECISION_WAIT_S:.0f}s; GET /bakeries/{order_id} shows when it is")
        finally:
            awaited_decisions.pop(decision["eventId"], None)
        if after is None or after["status"] != status:
            return error(self, 409, f"order {order_id}'s ticket is already {after and after['status']}")
        return self.json(after)


serve_rows(app, tickets, "/bakeries/{orderId}", "no bakery ticket for order {orderId}", lambda ticket, _: ticket,
           customers_own_rows=False)  # tickets are the bakers' business
