"""The order worker's query face: GET /orders/{orderId} from the order table, routed to the key's owner."""
from agents.order.lifecycle import public_view
from agents.order.worker import orders, worker
from api.faustweb import serve_rows

app = worker.app
serve_rows(app, orders, "/orders/{orderId}", "order {orderId} not found", lambda order, _: public_view(order))
