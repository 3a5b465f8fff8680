"""The order worker's query face, routed to the key's owner: GET /orders/{orderId} from the order table, and
GET /order-requests/{requestId}: the order a request sent over Kafka placed."""
from agents.order.lifecycle import public_view
from agents.order.worker import orders, requests, worker
from api.faustweb import serve_rows

app = worker.app
serve_rows(app, orders, "/orders/{orderId}", "order {orderId} not found", lambda order, _: public_view(order))
serve_rows(app, requests, "/order-requests/{requestId}", "no order placed for request {requestId}",
           lambda placed, request: {"requestId": request.match_info["requestId"], **placed}, key="requestId")
