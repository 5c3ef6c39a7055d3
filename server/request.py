"""The chat request both transports accept: checked once against SPEC, then sent upstream."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

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
