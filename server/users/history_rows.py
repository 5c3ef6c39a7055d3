"""A conversation's and a message's JSON (SPEC "History and sync") from their rows, and what
a client sends checked field by field: ids, titles, content, list cursors."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Row

from server.errors import BadRequest
from server.users.history_tables import MAX_ID_CHARS

MAX_TITLE_CHARS = 500
DEFAULT_TITLE = "New chat"
STATUSES = ("streaming", "done", "cancelled", "error")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stamp(ms: int) -> str:
    """A stored time as the other routes give times, ISO 8601 in UTC, to the millisecond
    (two messages of one second keep their order on the page)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return secrets.token_hex(12)


def checked_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise BadRequest(f"{field} must be a non-empty string of at most {MAX_ID_CHARS} characters")
    return value


def optional_id(value: object, field: str) -> str | None:
    return None if value is None else checked_id(value, field)


def checked_title(value: object, field: str = "title") -> str:
    if not isinstance(value, str) or len(value) > MAX_TITLE_CHARS:
        raise BadRequest(f"{field} must be a string of at most {MAX_TITLE_CHARS} characters")
    return value


def checked_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{field} must be true or false")
    return value


def checked_content(value: object, field: str = "content") -> tuple[str, str | None]:
    """A message's content as its plain text and, for a list of parts, their JSON."""
    if isinstance(value, str):
        return value, None
    if not isinstance(value, list):
        raise BadRequest(f"{field} must be a string or a list of content parts")
    texts = []
    for index, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"{field}[{index}] must be an object with a string type")
        text = part.get("text")
        if isinstance(text, str):
            texts.append(text)
    return "\n".join(texts), orjson.dumps(value).decode()


def content_of(row: Row[Any]) -> object:
    return row.text if row.parts is None else orjson.loads(row.parts)


def conversation_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "created_at": stamp(row.created_at),
        "updated_at": stamp(row.updated_at),
        "pinned": bool(row.pinned),
        "archived": bool(row.archived),
        "version": row.version,
    }


def message_json(row: Row[Any]) -> dict[str, Any]:
    error = None
    if row.status == "error":
        error = {"status": row.error_status, "message": row.error_message}
    message = {
        "id": row.id,
        "conversation_id": row.conversation_id,
        "parent_id": row.parent_id,
        "role": row.role,
        "content": content_of(row),
        "status": row.status,
        "chat_id": row.chat_id,
        "model": row.model,
        "usage": None if row.usage is None else orjson.loads(row.usage),
        "error": error,
        "created_at": stamp(row.created_at),
        "version": row.version,
    }
    if row.reasoning is not None:
        # Only on an answer that thought aloud: every other message keeps SPEC's shape exactly.
        message["reasoning"] = row.reasoning
    if row.tools is not None:
        # Only where there is some (as chat completions say them): an answer's `tool_calls`,
        # a tool output's `tool_call_id`; every other message keeps SPEC's shape exactly.
        message |= tool_fields(orjson.loads(row.tools))
    return message


def tool_fields(tools: object) -> dict[str, Any]:
    """The tool data a message keeps: `tool_calls` (a list) and `tool_call_id` (a string)."""
    if not isinstance(tools, dict):
        return {}
    out: dict[str, Any] = {}
    calls = tools.get("tool_calls")
    if isinstance(calls, list) and calls and all(isinstance(call, dict) for call in calls):
        out["tool_calls"] = calls
    if isinstance(tools.get("tool_call_id"), str):
        out["tool_call_id"] = tools["tool_call_id"]
    return out


def tools_json(message: dict[str, Any]) -> str | None:
    """What a message's `tools` column holds of a chat message: None when it has no tool data."""
    kept = tool_fields(message)
    return orjson.dumps(kept).decode() if kept else None


def cursor(updated_at: int, conversation_id: str) -> str:
    """Where the next page starts: the last row's place on the list's index."""
    raw = orjson.dumps([updated_at, conversation_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(value: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        updated_at, conversation_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("before must be the next of a previous page") from None
    if not isinstance(updated_at, int) or not isinstance(conversation_id, str):
        raise BadRequest("before must be the next of a previous page")
    return updated_at, conversation_id


def whole_number(raw: str | None, field: str, low: int, high: int, default: int) -> int:
    """A query parameter of ASCII digits (str.isdigit passes "²", which int() refuses)."""
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or not low <= int(raw) <= high:
        raise BadRequest(f"{field} must be a whole number from {low} to {high}")
    return int(raw)


def query_flag(raw: str | None, field: str) -> bool | None:
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{field} must be true or false")
