"""The one path every consumer takes with a message (agents/runtime/consuming.py), without Kafka: a sound
event reaches its handler with its correlation id set; anything else becomes a dead letter naming why; either
way the message counts as handled and the consumer goes on."""
import json

from agents import correlation
from agents.catalog import catalog
from agents.events import encode, make_event
from agents.runtime.consuming import Received, handle
from agents.runtime.metrics import Progress

ORDERS = catalog().topic_of_event("OrderPlaced").name


def received(value: bytes, offset: int = 3) -> Received:
    return Received(ORDERS, 1, offset, b"7", value)


async def run(value: bytes, handlers: dict) -> tuple[list, Progress]:
    letters, progress = [], Progress("test")

    async def send(letter):
        letters.append(letter)
    await handle("bakery", received(value), handlers, send, progress)
    return letters, progress


async def test_a_sound_event_reaches_its_handler_with_its_correlation_id():
    seen = []

    async def on_placed(event):
        seen.append((event["orderId"], correlation.current.get()))
    placed = make_event("OrderPlaced", correlation_id="saga-7", orderId=7, item="cake", qty=1, price=25000)
    letters, progress = await run(encode(placed), {"OrderPlaced": on_placed})
    assert seen == [(7, "saga-7")] and letters == []
    assert progress.next_offset(ORDERS, 1) == 4


async def test_an_event_no_handler_wants_is_left_alone():
    cancelled = make_event("OrderCancelled", correlation_id="c", orderId=7, reason="x")
    letters, progress = await run(encode(cancelled), {})
    assert letters == [] and progress.next_offset(ORDERS, 1) == 4


async def test_what_cannot_be_read_or_handled_becomes_a_dead_letter():
    async def failing(event):
        raise RuntimeError("the oven is cold")
    lacking = make_event("OrderPlaced", correlation_id="c", orderId=7, item="cake", qty=1, price=1)
    del lacking["price"]
    for value, handlers, why in (
        (b"\x00 not json", {}, "not JSON"),
        (json.dumps(lacking).encode(), {}, "lacks price"),
        (encode(make_event("OrderPlaced", correlation_id="c", orderId=7, item="cake", qty=1, price=1)),
         {"OrderPlaced": failing}, "RuntimeError: the oven is cold"),
    ):
        letters, progress = await run(value, handlers)
        (letter,) = letters
        assert letter["type"] == "DeadLetter" and why in letter["error"], letter["error"]
        assert (letter["consumer"], letter["failedTopic"], letter["failedOffset"]) == ("bakery", ORDERS, 3)
        assert progress.next_offset(ORDERS, 1) == 4


async def test_an_event_whose_header_names_a_type_no_handler_wants_is_counted_unread():
    letters, progress = [], Progress("test")

    async def send(letter):
        letters.append(letter)
    # Not even JSON: were it read, it would be a dead letter.
    unread = Received(ORDERS, 1, 3, b"7", b"\x00 not json", event_type="OrderCancelled")
    await handle("pay", unread, {"OrderRejected": send}, send, progress)
    assert letters == [] and progress.next_offset(ORDERS, 1) == 4


def test_the_type_header_is_read_however_the_client_gives_headers():
    headers = correlation.kafka_headers(make_event("OrderCancelled", correlation_id="c", orderId=7, reason="x"))
    assert correlation.event_type_of(tuple(headers)) == correlation.event_type_of(dict(headers)) == "OrderCancelled"
    assert correlation.event_type_of(None) is None
