"""Traces (agents/runtime/tracing.py): off, nothing is made or carried; on, a span's trace goes on in HTTP and Kafka
headers, the span that continues it shares its trace id, and the log's lines name it."""
import json
import logging

import pytest

from agents.events import make_event
from agents.runtime import tracing
from agents.runtime.logs import JsonLines


@pytest.fixture
def traced(capsys):
    """`traced()` turns tracing on for the test and returns what reads its spans back: one JSON object per line on
    the output (the console exporter). Started in the test itself, which has an output of its own."""
    def begin():
        tracing.start("console", "http://localhost:4318", "bread-test")
        return lambda: [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    yield begin
    tracing.stop()


def test_off_no_span_is_made_and_nothing_is_carried():
    assert not tracing.on()
    assert tracing.span("anything") is tracing.NOTHING
    assert tracing.handling("order", "bread.orders", "OrderPlaced", 7, {"traceparent": "x"}) is tracing.NOTHING
    assert tracing.http_headers() == {} and tracing.traceparent() is None and tracing.log_ids() == {}
    event = make_event("OrderPlaced", correlation_id="c", orderId=1, item="cake", qty=1, price=1)
    assert [name for name, _ in tracing.event_headers(event)] == ["correlation-id", "event-type"]
    assert tracing.carried([("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]) is None


def test_none_leaves_tracing_off():
    tracing.start("none", "http://localhost:4318", "bread-test")
    assert not tracing.on()


def test_a_span_continued_from_its_headers_is_of_the_same_trace(traced):
    spans = traced()
    with tracing.span("POST /orders", "server"):
        sent = dict(tracing.event_headers(make_event("OrderPlaced", correlation_id="c", orderId=1, item="cake",
                                                     qty=1, price=1)))
        asked = tracing.http_headers()
    assert sent["traceparent"].decode() == asked["traceparent"]
    with tracing.handling("bakery", "bread.orders", "OrderPlaced", 7, tracing.carried(list(sent.items()))):
        pass
    tracing.stop()
    served, handled = spans()
    assert handled["context"]["trace_id"] == served["context"]["trace_id"]
    assert handled["parent_id"] == served["context"]["span_id"]
    assert handled["name"] == "bakery handles OrderPlaced" and handled["kind"] == "SpanKind.CONSUMER"
    assert handled["attributes"]["messaging.kafka.offset"] == 7
    assert served["resource"]["attributes"]["service.name"] == "bread-test"


def test_a_kept_traceparent_continues_its_trace_later(traced):
    spans = traced()
    with tracing.span("ledger write"):
        kept = tracing.traceparent()
    with tracing.span("pay handles", "consumer", tracing.carried(tracing.headers_of(kept))):
        pass
    tracing.stop()
    written, relayed = spans()
    assert relayed["context"]["trace_id"] == written["context"]["trace_id"]


def test_the_log_lines_written_in_a_span_name_its_trace(traced):
    spans = traced()
    record = logging.getLogger("api.order").makeRecord("api.order", logging.INFO, __file__, 1, "placed", (), None)
    with tracing.span("POST /orders", "server"):
        line = json.loads(JsonLines("order").format(record))
    tracing.stop()
    (span,) = spans()
    assert line["traceId"] == span["context"]["trace_id"].removeprefix("0x")
    assert line["spanId"] == span["context"]["span_id"].removeprefix("0x")


def test_a_server_span_that_answered_5xx_is_failed(traced):
    spans = traced()
    with tracing.span("GET /orders/{orderId}", "server") as span:
        tracing.answered(span, 503)
    tracing.stop()
    (answered,) = spans()
    assert answered["status"]["status_code"] == "ERROR"
    assert answered["attributes"]["http.response.status_code"] == 503


async def test_a_service_serves_each_request_as_a_span_of_its_callers_trace(traced):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from agents.settings import Settings
    from api.http import service_app

    async def ready(_app):
        return []

    async def refuse(_request):
        return web.json_response({"error": "down"}, status=503)

    untraced = service_app("order", Settings.from_env({}), ready)
    spans = traced()
    app = service_app("order", Settings.from_env({}), ready)
    app.router.add_get("/orders/{orderId}", refuse)
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/orders/7", headers={"traceparent": caller})
        assert answer.status == 503
    tracing.stop()
    (served,) = spans()
    assert served["name"] == "GET /orders/{orderId}" and served["kind"] == "SpanKind.SERVER"
    assert served["context"]["trace_id"] == "0x4bf92f3577b34da6a3ce929d0e0e4736"
    assert served["parent_id"] == "0x00f067aa0ba902b7" and served["status"]["status_code"] == "ERROR"
    assert len(untraced.middlewares) == len(app.middlewares) - 1  # tracing off: not even the middleware
