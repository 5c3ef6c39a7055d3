"""Logging for both start paths: text lines, or one JSON object a line with LOG_FORMAT=json."""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .proxy import client_address_key


def quiet_known_warnings() -> None:
    """Called by each start path: aiohttp-session 2.12 keys the session by a plain string,
    which aiohttp warns about on every request; that is the library's own business."""
    warnings.filterwarnings(
        "ignore", "It is recommended to use web.RequestKey", web.NotAppKeyWarning
    )


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has; anything else on a record came in through `extra`.
RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, pid, message and its `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in RECORD_ATTRIBUTES:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """A dictConfig for the root logger; gunicorn's own loggers are routed through it too."""
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"format": TEXT_FORMAT},
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": formatter,
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            # Our AccessLogger writes through aiohttp.access; gunicorn's would be a duplicate.
            "gunicorn.access": {"handlers": [], "propagate": False},
        },
    }


class AccessLogger(AbstractAccessLogger):
    """One line per request: client, method, path, status, size, time; no query, no headers.

    Leaving out the query string and every header but User-Agent keeps tokens and keys
    out of the log whatever a client puts there.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # The proxy middleware works on a clone; the original request carries its result.
        client = request.get(client_address_key) or request.remote or "-"
        fields = {
            "remote": client,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time * 1000, 1),
            "user_agent": request.headers.get("User-Agent", "-"),
        }
        self.logger.info(
            '%(remote)s "%(method)s %(path)s" %(status)d %(bytes)d %(duration_ms).1fms '
            '"%(user_agent)s"',
            fields,
            extra=fields,
        )
