"""The order worker's query face, routed to the key's owner: GET /orders/{orderId} from the order table, and
GET /order-requests/{requestId}: the order a request sent over Kafka placed. For the order edge only (the gateway
routes no such path), GET /placements/{requestId}?wait=S answers as soon as the request is placed, or after S
seconds: the edge waits on the answer instead of asking again and again. For operators, GET /sagas: the orders in
each status and the unfinished sagas, gathered from every order worker (agents/order/sagas.py)."""
import asyncio
import time
from typing import Any

import aiohttp
from faust.web import Request, Response

from agents.order import sagas
from agents.order.intake import is_placed
from agents.order.lifecycle import OrderRecord, public_view
from agents.runtime.context_app import ContextApp
from agents.runtime.order import OrderAgents
from agents.settings import Settings
from api.faustweb import GuardedView, gather, serve_rows
from api.http import JsonError


def build(settings: Settings) -> ContextApp:
    """The order worker with its web views."""
    order = OrderAgents(settings)
    app = order.context_app.app
    serve_rows(app, order.orders, "/orders/{orderId}", "order {orderId} not found",
               lambda row, _: public_view(OrderRecord.from_json(row)))

    @app.page("/sagas")
    class Sagas(GuardedView):
        async def get(self, request: Request) -> Response:
            query, now = sagas.parse_query(request.query), time.time()

            def here() -> dict[str, Any]:
                return sagas.share_of(map(OrderRecord.from_json, order.orders.values()), query, now).to_json()
            if request.query.get("scope") == "local":  # another order worker gathering a page
                return self.json(here())
            try:
                gathered = await gather(app, order.orders, request, query.to_params(), here)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise JsonError(503, f"an order worker is unavailable: {exc or 'timeout'}") from None
            return self.json(sagas.page_of([sagas.Share.from_json(share) for share in gathered], query, now))

    def placement_view(placed: dict, request: Request) -> dict:
        return {"requestId": request.match_info["requestId"], **placed}
    serve_rows(app, order.requests, "/order-requests/{requestId}", "no order placed for request {requestId}",
               placement_view, key="requestId")
    serve_rows(app, order.requests, "/placements/{requestId}", "no order placed for request {requestId}",
               placement_view, key="requestId", wait_for=order.placement, waited=is_placed)
    return order.context_app
