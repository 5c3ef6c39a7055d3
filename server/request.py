"""The chat request both transports accept: checked once against SPEC, then sent upstream."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import BadRequest

MAX_MODEL_CHARS = 200
ROLES = ("system", "user", "assistant", "tool")
# OpenRouter's options passed upstream as given: what each must be, in the 400's words.
OBJECT_OPTIONS = ("reasoning", "provider")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A checked request. Messages and option objects are kept as their encoded JSON:
    a running chat holds about its request's size, not the many times more that tens of
    thousands of small decoded parts take (SPEC "Limits")."""

    model: str
    messages: orjson.Fragment
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    # `reasoning` and `provider`, encoded, when the request gave them.
    options: dict[str, orjson.Fragment] | None = None

    def upstream_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "stream": True,
            # Usage both ways: OpenRouter's, and OpenAI's (vLLM, LiteLLM, llama.cpp, …).
            "usage": {"include": True},
            "stream_options": {"include_usage": True},
        }
        for name in ("temperature", "max_tokens", "top_p"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.options:
            payload.update(self.options)
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
    if temperature is not None and not _is_number_within(temperature, 0, 2):
        raise BadRequest("chatSettings.temperature must be a number from 0 to 2")
    max_tokens = settings.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise BadRequest("chatSettings.max_tokens must be an integer of at least 1")
    top_p = settings.get("top_p")
    if top_p is not None and not _is_number_within(top_p, 0, 1):
        raise BadRequest("chatSettings.top_p must be a number from 0 to 1")
    options: dict[str, orjson.Fragment] = {}
    for name in OBJECT_OPTIONS:
        value = settings.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BadRequest(f"chatSettings.{name} must be an object")
        options[name] = _encoded(value, f"chatSettings.{name}")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    for index, message in enumerate(messages):
        check_message(index, message)
    return ChatRequest(
        model=model,
        messages=_encoded(messages, "messages"),
        temperature=temperature,
        max_tokens=max_tokens,
        top_p=top_p,
        options=options or None,
    )


def _is_number_within(value: object, low: float, high: float) -> bool:
    # bool is an int to Python, not a number to a user; NaN compares false to everything.
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and not math.isnan(value)
        and low <= value <= high
    )


def compact_json(value: object) -> bytes:
    """orjson.dumps, in bytes of their own size: orjson's result keeps its growing buffer,
    which was 16 MiB for the 0.86 MiB of 74,884 tiny parts."""
    return memoryview(orjson.dumps(value)).tobytes()


def _encoded(value: object, field: str) -> orjson.Fragment:
    try:
        return orjson.Fragment(compact_json(value))
    except orjson.JSONEncodeError:
        # orjson writes at most 254 levels of nesting; no chat needs more.
        raise BadRequest(f"{field} is nested too deeply") from None


def check_message(
    index: int, message: object, roles: tuple[str, ...] = ROLES, *, tool_calls_only: bool = False
) -> None:
    """One message of a chat; `tool_calls_only`: an assistant turn may have no content
    (OpenAI sends null for a turn that only called tools)."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise BadRequest(f"{where} must be an object")
    role = message.get("role")
    if not isinstance(role, str) or role not in roles:
        raise BadRequest(f"{where}.role must be one of {', '.join(roles)}")
    content = message.get("content")
    if isinstance(content, str):
        return
    if tool_calls_only and content is None and role == "assistant":
        return
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or a list of content parts")
    for part_index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"{where}.content[{part_index}] must be an object with a string type")
