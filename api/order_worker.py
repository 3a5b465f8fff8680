"""The order worker's query face: GET /orders/{orderId} from the order table, routed to the key's owner."""
from faust.web import Request, Response, View

from agents.order.lifecycle import public_view
from agents.order.worker import orders, worker
from api.faustweb import error

app = worker.app


@app.page("/orders/{orderId}")
class OrderView(View):
    @app.table_route(table=orders, match_info="orderId")
    async def get(self, request: Request, orderId: str) -> Response:  # noqa: N803 - the route's name
        order = orders.get(orderId)
        if order is None:
            return error(self, 404, f"order {orderId} not found")
        return self.json(public_view(order))
