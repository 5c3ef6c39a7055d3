"""What the server writes for its operator: log lines, the access log, quiet warnings.

Logging is the same for both start paths: text lines, or one JSON object a line with
LOG_FORMAT=json, every value escaped so that none can forge a line. What it counts (the
metrics, and each chat's end line) is in metrics.py.
"""

from __future__ import annotations

import logging
import re
import warnings
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http import HttpProcessingError

client_address_key = web.RequestKey("client_address", str)
"""The forwarded client address (server/web/access.py), kept on the original request for the
access log."""


def quiet_known_warnings() -> None:
    """Called by each start path: aiohttp-session 2.12 keys the session by a plain string,
    which aiohttp warns about on every request; that is the library's own business."""
    warnings.filterwarnings(
        "ignore", "It is recommended to use web.RequestKey", web.NotAppKeyWarning
    )


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# What could end a log line or fake one inside a logged value: control characters (CR, LF,
# ESC, ...), Unicode's line and paragraph separators, and the bidi controls that reorder
# what a terminal shows. Ids, paths, model names and finish reasons come from outside.
UNSAFE_CHARACTERS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


# In a JSON line orjson escapes the C0 controls; these it writes as they are, and tools that
# split lines the way Python's str.splitlines() does would break the line at some of them.
JSON_UNSAFE_CHARACTERS = re.compile(
    r"[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` on one line, each unsafe character written as its `\\xNN`/`\\uNNNN` escape."""
    if UNSAFE_CHARACTERS.search(text) is None:
        return text
    return UNSAFE_CHARACTERS.sub(_escaped, text)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT with the message kept on its line: a value cannot start a forged one."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


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
            "message": escape_controls(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in RECORD_ATTRIBUTES:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        line = orjson.dumps(entry, default=str).decode()
        # They can only be inside JSON strings, where \uXXXX is the same character.
        if JSON_UNSAFE_CHARACTERS.search(line) is None:
            return line
        return JSON_UNSAFE_CHARACTERS.sub(_json_escaped, line)


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """A dictConfig for the root logger; gunicorn's own loggers are routed through it too."""
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"()": TextFormatter, "fmt": TEXT_FORMAT},
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
            # Alembic narrates every plugin and context at INFO; server/users/migrate.py
            # writes the one line that matters (which revisions were applied).
            "alembic": {"level": "WARNING"},
        },
    }


QUOTED_FIELDS = ("method", "path", "user_agent")


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
        # Quotes inside the quoted fields would let a client fake the fields after them.
        quoted = {name: str(fields[name]).replace('"', "\\x22") for name in QUOTED_FIELDS}
        self.logger.info(
            '%(remote)s "%(method)s %(path)s" %(status)d %(bytes)d %(duration_ms).1fms '
            '"%(user_agent)s"',
            fields | quoted,
            extra=fields,
        )


def first_line(text: str) -> str:
    """The first non-empty line of aiohttp's multi-line parser messages, without its colon."""
    return next((line for line in text.splitlines() if line.strip()), "").strip().rstrip(":")


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs every request it cannot parse (and every broken body it reads out after
    the answer) as an ERROR with a traceback, and anyone can send those: the access log's
    line (a 400) is enough, the reason goes to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, web.RequestPayloadError):
            exc = exc.__cause__ if isinstance(exc.__cause__, HttpProcessingError) else exc
        elif not isinstance(exc, HttpProcessingError):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        reason = exc.message if isinstance(exc, HttpProcessingError) else "broken body"
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "malformed request: %s", (first_line(reason),)
        record.exc_info, record.exc_text = None, None
        return True


def quiet_malformed_requests() -> None:
    """Install MalformedRequestFilter on aiohttp's server logger, once per process."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
