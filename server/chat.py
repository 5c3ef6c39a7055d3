"""The core: validate a chat request, stream it from upstream as events, log one line per chat."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from .chunks import read_batch
from .errors import BadRequest, ChatError, UpstreamError
from .events import ChatEvent, Done
from .metrics import observe_chat
from .openrouter import Upstream, redact

log = logging.getLogger(__name__)

MAX_MODEL_CHARS = 200
ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None

    def upstream_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "stream": True,
            "usage": {"include": True},
        }
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        return payload


def parse_chat_request(data: object) -> ChatRequest:
    """Check a decoded body or frame against SPEC; BadRequest names the first bad field."""
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object")
    settings = data.get("chatSettings")
    if not isinstance(settings, dict):
        raise BadRequest("chatSettings must be an object")
    model = settings.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_CHARS:
        raise BadRequest(
            f"chatSettings.model must be a non-empty string of at most {MAX_MODEL_CHARS} characters"
        )
    temperature = settings.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
        or math.isnan(temperature)
    ):
        raise BadRequest("chatSettings.temperature must be a number from 0 to 2")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    for index, message in enumerate(messages):
        _check_message(index, message)
    return ChatRequest(model=model, messages=messages, temperature=temperature)


def _check_message(index: int, message: object) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise BadRequest(f"{where} must be an object")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise BadRequest(f"{where}.role must be one of system, user, assistant, tool")
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or a list of content parts")
    for part_index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"{where}.content[{part_index}] must be an object with a string type")


async def stream_chat(
    request: ChatRequest, api_key: str, upstream: Upstream, *, transport: str, chat_id: str
) -> AsyncGenerator[ChatEvent, None]:
    """Yield the chat's text as Delta/Reasoning events and end with Done, or raise ChatError.

    Text that arrived in one upstream read is merged into one event. Close the iterator
    (`contextlib.aclosing`) to cancel: the upstream request is closed at once.
    """
    started = time.monotonic()
    first_text_at: float | None = None
    pieces = 0
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    status, outcome = 499, "cancelled"
    try:
        async with upstream.open_chat(api_key, request.upstream_payload()) as batches:
            finished = False
            async for payloads in batches:
                batch = read_batch(payloads)
                finish_reason = batch.finish_reason or finish_reason
                usage = batch.usage or usage
                for event in batch.events:
                    if first_text_at is None:
                        first_text_at = time.monotonic()
                    pieces += 1
                    yield event
                if batch.error is not None:
                    raise batch.error
                if batch.finished:
                    finished = True
                    break
            if not finished and finish_reason is None:
                raise UpstreamError("OpenRouter closed the stream before it finished")
            status, outcome = 200, "done"
            # Inside the `async with`: the client hears "done" before upstream's connection
            # is wound down for reuse.
            yield Done(finish_reason, usage)
    except ChatError as error:
        error.message = redact(error.message, api_key)
        status, outcome = error.status, "error"
        raise
    except Exception:
        status, outcome = 500, "error"
        raise
    finally:
        tokens = usage.get("completion_tokens") if usage else None
        tokens = tokens if isinstance(tokens, int) else pieces
        ttft_ms = None if first_text_at is None else round((first_text_at - started) * 1000)
        duration_ms = round((time.monotonic() - started) * 1000)
        fields = {
            "chat_id": chat_id, "transport": transport, "model": _loggable(request.model),
            "status": status, "outcome": outcome, "finish_reason": finish_reason,
            "tokens": tokens, "ttft_ms": ttft_ms, "duration_ms": duration_ms,
            "cancelled": outcome == "cancelled",
        }  # fmt: skip
        log.info(
            "chat end id=%(chat_id)s transport=%(transport)s model=%(model)s status=%(status)d "
            "outcome=%(outcome)s finish_reason=%(finish_reason)s tokens=%(tokens)s "
            "ttft_ms=%(ttft_ms)s duration_ms=%(duration_ms)d cancelled=%(cancelled)s",
            fields, extra=fields,
        )  # fmt: skip
        observe_chat(transport, outcome, tokens, ttft_ms, duration_ms)


def _loggable(text: str) -> str:
    """The model name is user input: keep a log line one line."""
    return text.encode("unicode_escape").decode("ascii")[:MAX_MODEL_CHARS]
