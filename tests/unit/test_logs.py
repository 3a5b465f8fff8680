"""The services' log lines (agents/runtime/logs.py): one JSON object per record for a log collector, or text for
a person, with the correlation id and structured fields wherever a record has them."""
import json
import logging
import sys
import warnings

import pytest

from agents import correlation
from agents.runtime import logs
from agents.runtime.logs import FIELDS, JsonLines, TextLines


def record(message: str = "order %s placed", args: tuple = (7,), exc_info=None, **extra) -> logging.LogRecord:
    made = logging.getLogger("api.order").makeRecord("api.order", logging.WARNING, __file__, 1, message, args,
                                                      exc_info, extra=extra or None)
    made.created = 1_764_680_000.25  # 2025-12-02T12:53:20.250Z
    return made


def test_a_json_line_has_the_time_level_logger_message_and_service():
    line = JsonLines("order").format(record())
    assert json.loads(line) == {"time": "2025-12-02T12:53:20.250Z", "level": "WARNING", "logger": "api.order",
                                "message": "order 7 placed", "service": "order"}
    assert "\n" not in line


def test_a_json_line_carries_the_correlation_id_and_the_records_fields():
    entry = json.loads(JsonLines("gateway").format(record(correlation_id="c-1", **{FIELDS: {"status": 201}})))
    assert entry["correlationId"] == "c-1" and entry["status"] == 201


def test_a_json_line_keeps_a_failures_traceback_on_one_line():
    try:
        raise ValueError("no such bread")
    except ValueError:
        line = JsonLines("pay").format(record("failed", (), sys.exc_info()))
    entry = json.loads(line)
    assert entry["message"] == "failed" and "ValueError: no such bread" in entry["error"]
    assert "\n" not in line


def test_a_json_line_holds_text_orjson_refuses():
    line = JsonLines("gateway").format(record("GET %s", ("/mypages/\udcff",)))
    assert json.loads(line)["message"] == "GET /mypages/\udcff"


def test_a_text_line_ends_with_the_fields_and_the_correlation_id():
    line = TextLines().format(record(correlation_id="c-2", **{FIELDS: {"status": 201}}))
    assert line.endswith(' WARNING api.order: order 7 placed {"status":201} [correlation c-2]')


def test_a_text_line_names_the_correlation_id_once():
    line = TextLines().format(record(correlation_id="c-3", **{FIELDS: {"correlationId": "c-3"}}))
    assert line.count("c-3") == 1


@pytest.fixture
def configured_logging():
    """The root logger as a test found it, whatever `logs.setup` made of it."""
    root = logging.getLogger()
    handlers, level, factory = root.handlers[:], root.level, logging.getLogRecordFactory()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    logging.captureWarnings(False)


def test_json_logging_writes_every_records_and_warnings_as_json_to_the_output(configured_logging, capsys):
    logs.setup("json", "info", "mypage")
    correlation.current.set("c-4")
    try:
        logging.getLogger("aiokafka.consumer").info("joined %s", "bread-mypage")
        logging.getLogger("faust.worker").debug("below the level")
        warnings.warn("an old setting", DeprecationWarning, stacklevel=1)
    finally:
        correlation.current.set(None)
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["logger"], e["service"], e["correlationId"]) for e in entries] == [
        ("aiokafka.consumer", "mypage", "c-4"), ("py.warnings", "mypage", "c-4")]
    assert entries[0]["message"] == "joined bread-mypage"


def test_text_logging_is_the_default_setting(configured_logging, capsys):
    from agents.settings import Settings

    settings = Settings.from_env({})
    logs.setup(settings.bread_log_format, settings.bread_log_level, "order")
    logging.getLogger("api.order").info("order %s placed", 8)
    assert capsys.readouterr().out.strip().endswith("INFO api.order: order 8 placed")
