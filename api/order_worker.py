"""The order worker's query face, routed to the key's owner: GET /orders/{orderId} from the order table, and
GET /order-requests/{requestId}: the order a request sent over Kafka placed. For the order edge only (the gateway
routes no such path), GET /placements/{requestId}?wait=S answers as soon as the request is placed, or after S
seconds: the edge waits on the answer instead of asking again and again. For operators, GET /sagas: the orders in
each status and the unfinished sagas, gathered from every order worker (agents/order/sagas.py); GET /dead-letters,
every dead letter newest first with its replays, and POST /dead-letters/{id}/replay (agents/deadletters.py)."""
import asyncio
import time
from typing import Any, Awaitable, Callable

import aiohttp
from aiokafka.errors import KafkaError
from faust.web import Request, Response

from agents import deadletters
from agents.deadletters import Message
from agents.order import sagas
from agents.order.intake import is_placed
from agents.order.lifecycle import OrderRecord, public_view
from agents.runtime import dead_letters
from agents.runtime.context_app import ContextApp
from agents.runtime.order import OrderAgents
from agents.settings import Settings
from api.faustweb import GuardedView, gather, serve_rows
from api.http import JsonError
from api.routes import principal_of

ReadLetters = Callable[[], Awaitable[list[Message]]]


def build(settings: Settings, read_letters: ReadLetters | None = None) -> ContextApp:
    """The order worker with its web views; `read_letters` reads the dead-letter topic whole (a stand-in, in
    tests)."""
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
    serve_sagas(order)
    serve_dead_letters(order, read_letters or (lambda: dead_letters.read_letters(settings.kafka_bootstrap)))
    return order.context_app


def serve_sagas(order: OrderAgents) -> None:
    """GET /sagas: the counts and a page of the unfinished sagas, gathered from every order worker."""
    app = order.context_app.app

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


def serve_dead_letters(order: OrderAgents, read: ReadLetters) -> None:
    """GET /dead-letters and POST /dead-letters/{id}/replay; every order worker answers for the whole topic."""
    app = order.context_app.app

    async def letters() -> list[Message]:
        try:
            return await read()
        except KafkaError as exc:
            raise JsonError(503, f"the dead-letter topic cannot be read now: {exc}") from None

    async def send(topic: str, key: bytes | None, value: bytes) -> tuple[int, int]:
        sent = await app.producer.send_and_wait(topic, key, value, None, None, None)
        return sent.partition, sent.offset

    @app.page("/dead-letters")
    class DeadLetters(GuardedView):
        async def get(self, request: Request) -> Response:
            page, size = deadletters.parse_page(request.query)
            return self.json(deadletters.page_of_letters(await letters(), page, size))

    @app.page("/dead-letters/{id}/replay")
    class Replay(GuardedView):
        async def post(self, request: Request, **match: str) -> Response:
            letter = match["id"]  # the letter's offset on the dead-letter topic, as GET /dead-letters shows it
            offset = int(letter) if letter.isascii() and letter.isdigit() and len(letter) <= 18 else -1
            found = deadletters.letter_at(await letters(), offset)
            principal = principal_of(request)
            try:
                replayed = await dead_letters.replay(offset, dict(found), send,
                                                     lambda note: order.context_app.emit(note, wait=True),
                                                     by=principal.name if principal else None)
            except KafkaError as exc:
                raise JsonError(503, f"the letter could not be replayed now: {exc}") from None
            return self.json(replayed)
