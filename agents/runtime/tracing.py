"""Where one order's time went, as an OpenTelemetry trace: opt-in (`OTEL_TRACES_EXPORTER=otlp|console`), off by
default, and then at no cost — no span is made, no header added, nothing of OpenTelemetry's SDK imported.

With it on, every HTTP request a service serves is a span, continuing the caller's trace from its `traceparent`
header; every call a service makes (the gateway's to its targets, the order's to pay) carries that header on; every
event sent carries it in its Kafka headers, and so does every table row a context writes to its changelog (Mypage
follows the order's table); each Faust worker's and pay's handling of an event or row is a span continuing the
trace of whatever sent it. So one order's spans make one trace: gateway, order edge, its call to pay, pay's ledger
write, and each context's handling. While a span is current its trace and span ids go on the service's log lines.

One tracer per process, set up once at start (`start`), like the log's configuration: the spans are made deep in
the runtime, and handing a tracer to each of those places would thread it through every constructor for a thing
most runs have off.
"""
from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Iterable, Mapping

from agents import correlation
from agents.events import Event

KafkaHeaders = list[tuple[str, bytes]]
Carrier = dict[str, str]  # W3C trace context headers (traceparent, tracestate) as text
TRACE_HEADERS = ("traceparent", "tracestate")
NOTHING: AbstractContextManager[None] = nullcontext()

_tracer: Any = None  # opentelemetry.trace.Tracer while tracing is on
_provider: Any = None


def start(exporter: str, otlp_endpoint: str, service_name: str) -> None:
    """Trace this process's work, sending its spans to `exporter` (`otlp` or `console`; `none` leaves it off)."""
    global _tracer, _provider
    if exporter == "none":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        sink: Any = OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")
    else:  # one span per line on the output, beside the log's lines
        sink = ConsoleSpanExporter(service_name, out=sys.stdout,
                                   formatter=lambda span: span.to_json(indent=None) + "\n")
    _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    _provider.add_span_processor(BatchSpanProcessor(sink))
    _tracer = _provider.get_tracer("bread")


def stop() -> None:
    """Send the spans still held, then trace nothing more."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def on() -> bool:
    return _tracer is not None


def span(name: str, kind: str = "internal", parent: Mapping[str, str] | None = None,
         **attributes: Any) -> AbstractContextManager[Any]:
    """A span around what follows, current meanwhile: a child of the current span, or with `parent` (headers a
    caller sent) of the caller's. `kind` is OpenTelemetry's: server, client, producer, consumer, internal."""
    if _tracer is None:
        return NOTHING
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    context = propagate.extract(parent) if parent is not None else None
    return _tracer.start_as_current_span(name, context=context, kind=SpanKind[kind.upper()],
                                         attributes={k: v for k, v in attributes.items() if v is not None})


def handling(context: str, topic: str, event_type: str | None, offset: int,
             parent: Carrier | None) -> AbstractContextManager[Any]:
    """The span of a context handling one message, continuing the trace that sent it."""
    if _tracer is None:
        return NOTHING
    return span(f"{context} handles {event_type or topic}", "consumer", parent, **{
        "context": context, "messaging.destination.name": topic, "messaging.kafka.offset": offset})


def http_headers() -> Carrier:
    """The headers that carry the current span's trace on to a service this one calls (none while off)."""
    if _tracer is None:
        return {}
    from opentelemetry import propagate

    carrier: Carrier = {}
    propagate.inject(carrier)
    return carrier


def event_headers(event: Event) -> KafkaHeaders:
    """The Kafka headers of an event bread sends: its correlation id and type, and the current trace."""
    if _tracer is None:
        return correlation.kafka_headers(event)
    return correlation.kafka_headers(event) + trace_headers()


def trace_headers() -> KafkaHeaders:
    """The current trace as Kafka headers (none while off), for a changelog's row as for an event."""
    return [(name, value.encode()) for name, value in http_headers().items()]


def traceparent() -> str | None:
    """The current span's W3C traceparent (None while off or outside a span), to keep with work done later."""
    return http_headers().get("traceparent")


def headers_of(traceparent: str | None) -> KafkaHeaders:
    """The Kafka header that continues a trace kept as its traceparent."""
    return [("traceparent", traceparent.encode())] if traceparent else []


def carried(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> Carrier | None:
    """The trace a message's Kafka headers carry, to continue where it is handled (None while off or absent)."""
    if _tracer is None or not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = {name: value.decode(errors="replace") for name, value in pairs if name in TRACE_HEADERS}
    return found or None


def log_ids() -> dict[str, str]:
    """The current span's trace and span ids, for the log line being written (none while off or outside one)."""
    if _tracer is None:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"traceId": format(context.trace_id, "032x"), "spanId": format(context.span_id, "016x")}


def name_route(name: str, route: str) -> None:
    """Name the current server span after the route a request took, where the server matched only a catch-all
    (the gateway's)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    current.update_name(name)
    current.set_attribute("http.route", route)


def answered(current: Any, status: int) -> None:
    """Note on an HTTP server span the status it answered; 5xx marks the span failed."""
    if _tracer is None or current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("http.response.status_code", status)
    if status >= 500:
        current.set_status(Status(StatusCode.ERROR))
