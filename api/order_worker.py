"""The order worker's query face, routed to the key's owner: GET /orders/{orderId} from the order table, and
GET /order-requests/{requestId}: the order a request sent over Kafka placed. For the order edge only (the
gateway routes no such path), GET /placements/{requestId}?wait=S answers as soon as the request is placed, or
after S seconds: the edge waits on the answer instead of asking again and again."""
from agents.order.lifecycle import public_view
from agents.order.intake import is_placed
from agents.runtime.order import orders, placement, requests, worker
from api.faustweb import serve_rows

app = worker.app
serve_rows(app, orders, "/orders/{orderId}", "order {orderId} not found", lambda order, _: public_view(order))
serve_rows(app, requests, "/order-requests/{requestId}", "no order placed for request {requestId}",
           lambda placed, request: {"requestId": request.match_info["requestId"], **placed}, key="requestId")
serve_rows(app, requests, "/placements/{requestId}", "no order placed for request {requestId}",
           lambda placed, request: {"requestId": request.match_info["requestId"], **placed}, key="requestId",
           wait_for=placement, waited=is_placed)
