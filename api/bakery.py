"""The baker's face (8082), Faust web views over the bakery tickets: see a ticket, confirm it."""
import json

from faust.web import Request, Response, View

from agents.bakery.tickets import EVENT_OF_DECISION, DecisionRefused, check_decision, decide, ticket_cause
from agents.bakery.worker import tickets, worker
from agents.correlation import HTTP_HEADER, carried
from agents.events import make_event, new_correlation_id
from api.faustweb import error, forward_to_owner, serve_rows

app = worker.app


@app.page("/bakeries")
class BakeryDecision(View):
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
        if announce:
            # The decision belongs to the order's saga, not to the baker's request.
            correlation = ticket.get("correlationId") or carried(request.headers.get(HTTP_HEADER)) or new_correlation_id()
            because = {"reason": reason} if reason else {}
            await worker.emit(make_event(EVENT_OF_DECISION[status], correlation_id=correlation,
                                         cause=ticket_cause(order_id), orderId=order_id, bakeryId=ticket["bakeryId"], **because))
        return self.json({**ticket, "status": status, **({"reason": reason} if reason else {})})


serve_rows(app, tickets, "/bakeries/{orderId}", "no bakery ticket for order {orderId}", lambda ticket, _: ticket,
           customers_own_rows=False)  # tickets are the bakers' business
