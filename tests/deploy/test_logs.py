"""LOG_FORMAT=json lines and the access log: structured fields, no secrets."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from server.telemetry import AccessLogger, JsonFormatter, logging_config


def record(message: str, *args: object, **extra: Any) -> logging.LogRecord:
    logger = logging.getLogger("server.chat")
    return logger.makeRecord(
        "server.chat", logging.INFO, __file__, 1, message, args, None, extra=extra
    )


def test_json_line_has_time_level_logger_message_and_extra_fields() -> None:
    fields = {"chat_id": "c1", "transport": "ws", "tokens": 3, "ttft_ms": None}
    line = JsonFormatter().format(record("chat end id=%(chat_id)s", fields, **fields))
    entry = orjson.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO"
    assert entry["logger"] == "server.chat"
    assert entry["message"] == "chat end id=c1"
    assert entry["time"].endswith("+00:00")
    assert isinstance(entry["pid"], int)
    assert {k: entry[k] for k in fields} == fields
    assert "args" not in entry and "msg" not in entry


def test_json_line_carries_the_traceback_and_odd_values() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info(), extra={"obj": object()}
        )
    entry = orjson.loads(JsonFormatter().format(exc_record))
    assert "ValueError: boom" in entry["exc_info"]
    assert entry["obj"].startswith("<object")


@pytest.mark.parametrize(("log_format", "formatter"), [("json", "json"), ("text", "text")])
def test_logging_config_picks_the_formatter(log_format: str, formatter: str) -> None:
    config = logging_config("DEBUG", log_format)
    assert config["handlers"]["stderr"]["formatter"] == formatter
    assert config["root"]["level"] == "DEBUG"


def test_access_log_has_no_query_and_no_authorization(caplog: pytest.LogCaptureFixture) -> None:
    request = make_mocked_request(
        "GET",
        "/api/profile?token=secret-in-query",
        headers={"Authorization": "Bearer secret-token", "User-Agent": "curl/8"},
    )
    logger = logging.getLogger("aiohttp.access")
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        AccessLogger(logger, "").log(request, web.Response(status=204), 0.0123)
    [entry] = caplog.records
    line = JsonFormatter().format(entry)
    assert "secret" not in line
    assert '"GET /api/profile" 204' in entry.getMessage()
    fields = orjson.loads(line)
    assert fields["path"] == "/api/profile"
    assert fields["status"] == 204
    assert fields["duration_ms"] == 12.3
    assert fields["user_agent"] == "curl/8"
