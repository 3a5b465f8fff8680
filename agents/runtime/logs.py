"""How every service writes its log to its output: one line per record, as text for a person reading a terminal
(`BREAD_LOG_FORMAT=text`) or as one JSON object for a log collector (`json`: Loki, Elasticsearch, Cloud
Logging). One configuration for bread's own records and for those of Faust, aiokafka and aiohttp, and for
Python's warnings, so no line of a service is in another shape.

A record may carry structured fields (`extra={FIELDS: {...}}`, as the gateway's access record does): the JSON
line has them beside time, level, logger, message and service; the text line ends with them as one JSON object.
The correlation id (and the trace's ids, while tracing) of what is being handled go on every line they are known
on.
"""
from __future__ import annotations

import json
import logging
import logging.config
from datetime import datetime, timezone
from typing import Any

import orjson

from agents import correlation
from agents.runtime import tracing

FIELDS = "fields"  # the `extra` key of a record's structured fields
TEXT_LAYOUT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logging_config(log_format: str, level: str, service: str) -> dict[str, Any]:
    """The `logging.config.dictConfig` of one service; a Faust worker hands it to its Worker, which applies it."""
    formatter = {"()": JsonLines, "service": service} if log_format == "json" else {"()": TextLines}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"bread": formatter},
        "handlers": {"output": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                                "formatter": "bread"}},
        "root": {"level": level.upper(), "handlers": ["output"]},
    }


def setup(log_format: str, level: str, service: str) -> None:
    """Configure logging for an aiohttp service (a Faust worker applies `logging_config` itself)."""
    correlation.install_log_tagging()
    logging.config.dictConfig(logging_config(log_format, level, service))
    logging.captureWarnings(True)


def known_ids(record: logging.LogRecord) -> dict[str, str]:
    """The ids of what was being handled when the record was written: its saga's correlation id, its trace."""
    ids = {"correlationId": record.correlation_id} if getattr(record, "correlation_id", None) else {}
    return {**ids, **tracing.log_ids()}


class TextLines(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_LAYOUT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        fields = getattr(record, FIELDS, None)
        if fields:
            line = f"{line} {orjson.dumps(fields, default=str).decode()}"
        ids = known_ids(record)
        if "correlationId" in ids and ids["correlationId"] not in line:
            line = f"{line} [correlation {ids['correlationId']}]"
        return line


class JsonLines(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "service": self.service, **known_ids(record), **(getattr(record, FIELDS, None) or {}),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # text orjson refuses, as a lone surrogate from a client's undecodable path: escaped
            return json.dumps(entry, default=str)
