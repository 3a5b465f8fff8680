"""The order worker's query face, routed to the key's owner: GET /orders/{orderId} from the order table, and
GET /order-requests/{requestId}: the order a request sent over Kafka placed. For the order edge only (the
gateway routes no such path), GET /placements/{requestId}?wait=S answers as soon as the request is placed, or
after S seconds: the edge waits on the answer instead of asking again and again."""
from faust.web import Request

from agents.order.intake import is_placed
from agents.order.lifecycle import OrderRecord, public_view
from agents.runtime.context_app import ContextApp
from agents.runtime.order import OrderAgents
from agents.settings import Settings
from api.faustweb import serve_rows


def build(settings: Settings) -> ContextApp:
    """The order worker with its web views."""
    order = OrderAgents(settings)
    app = order.context_app.app
    serve_rows(app, order.orders, "/orders/{orderId}", "order {orderId} not found",
               lambda row, _: public_view(OrderRecord.from_json(row)))

    def placement_view(placed: dict, request: Request) -> dict:
        return {"requestId": request.match_info["requestId"], **placed}
    serve_rows(app, order.requests, "/order-requests/{requestId}", "no order placed for request {requestId}",
               placement_view, key="requestId")
    serve_rows(app, order.requests, "/placements/{requestId}", "no order placed for request {requestId}",
               placement_view, key="requestId", wait_for=order.placement, waited=is_placed)
    return order.context_app
