"""A collector of OpenTelemetry spans on this machine, for the end-to-end tests and the benchmark: it takes what
bread's services send over OTLP/HTTP (protobuf, to `/v1/traces`), as a real collector would, and keeps the spans.

It serves from a thread of its own, so a test that blocks its own event loop for a while (stopping a process,
say) never makes the services' exporters wait.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ops.localsystem import free_port


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # empty for a trace's first span
    name: str
    service: str  # the resource's service.name
    kind: int  # OTLP's SpanKind number: 2 server, 3 client, 4 producer, 5 consumer
    attributes: dict
    start_ns: int
    end_ns: int


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = {a.key: _value(a.value) for a in span.attributes}
                found.append(Span(span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), span.name,
                                  resource.get("service.name", ""), span.kind, attributes,
                                  span.start_time_unix_nano, span.end_time_unix_nano))
    return found


def _value(value) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class TraceSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"  # OTEL_EXPORTER_OTLP_ENDPOINT
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="trace-sink", daemon=True)

    def start(self) -> TraceSink:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the trace sink did not start")
        return self

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._take)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    async def _take(self, request: web.Request) -> web.Response:
        exported = ExportTraceServiceRequest()
        exported.ParseFromString(await request.read())
        taken = spans_of(exported)
        with self._lock:
            self._spans.extend(taken)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")
