"""One correlation id per saga: from the caller's X-Correlation-ID (or a new one) at the edge, through every
event (its `correlationId` field and a Kafka header), into every log line written while handling it."""
from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Iterable, Mapping

from agents.events import Event

HTTP_HEADER = "X-Correlation-ID"
KAFKA_HEADER = "correlation-id"
TYPE_HEADER = "event-type"
current: ContextVar[str | None] = ContextVar("correlation_id", default=None)
# What a caller's id may be to be carried on: it goes into log lines and Kafka headers as it is.
CARRIED = re.compile(r"^[!-~]{1,200}$")


def carried(caller_id: str | None) -> str | None:
    """The caller's correlation id if it is 1-200 printable ASCII characters without spaces, else None (a
    new one is assigned: a request is not refused for a tracing header)."""
    return caller_id if caller_id and CARRIED.match(caller_id) else None


def kafka_headers(event: Event) -> list[tuple[str, bytes]]:
    return [(KAFKA_HEADER, event["correlationId"].encode()), (TYPE_HEADER, event["type"].encode())]


def event_type_of(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> str | None:
    """The type a message's header says it carries (bread's producers set it; other senders may not)."""
    for name, value in (headers.items() if isinstance(headers, Mapping) else headers or ()):
        if name == TYPE_HEADER:
            return value.decode(errors="replace")
    return None


def install_log_tagging() -> None:
    """Every log record carries the correlation id current when it was written (`correlation_id`, None when
    none is), for the log's formatter to write on its line."""
    make_record = logging.getLogRecordFactory()

    def tagged(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.correlation_id = current.get()
        return record

    if not getattr(make_record, "bread_tagging", False):
        tagged.bread_tagging = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(tagged)
