"""The chat requests: chatbot-ui's (both transports) and OpenAI's (/v1), each checked once.

Both are checked field by field against SPEC, a 400 naming the first bad field, and kept
as their encoded JSON until they are sent upstream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from server.errors import BadRequest

MAX_MODEL_CHARS = 200
ROLES = ("system", "user", "assistant", "tool")
# SPEC's roles, plus OpenAI's `developer` (its newer name for `system`), which the SDKs'
# own examples send; OpenRouter and OpenAI accept it.
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")
# OpenRouter's options passed upstream as given: what each must be, in the 400's words.
OBJECT_OPTIONS = ("reasoning", "provider")
# /v1's `n`: OpenAI's own bound is 128.
MAX_CHOICES = 128


def _number(low: float, high: float) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        # bool is an int to Python, not a number to a user; NaN compares false to everything.
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and not math.isnan(value)
            and low <= value <= high
        )

    return check


def _integer(low: int, high: int | None = None) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= low
            and (high is None or value <= high)
        )

    return check


def _stop(value: object) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _of(kind: type | tuple[type, ...]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, kind)


# chatbot-ui's chatSettings fields checked by value; other fields are accepted and ignored.
CHAT_SETTINGS: dict[str, tuple[Callable[[object], bool], str]] = {
    "temperature": (_number(0, 2), "a number from 0 to 2"),
    "max_tokens": (_integer(1), "an integer of at least 1"),
    "top_p": (_number(0, 1), "a number from 0 to 1"),
}


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
    model = _checked_model(settings.get("model"), "chatSettings.model")
    for name, (valid, what) in CHAT_SETTINGS.items():
        value = settings.get(name)
        if value is not None and not valid(value):
            raise BadRequest(f"chatSettings.{name} must be {what}")
    options: dict[str, orjson.Fragment] = {}
    for name in OBJECT_OPTIONS:
        value = settings.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BadRequest(f"chatSettings.{name} must be an object")
        options[name] = _encoded(value, f"chatSettings.{name}")
    messages = _checked_messages(data.get("messages"), ROLES)
    return ChatRequest(
        model=model,
        messages=_encoded(messages, "messages"),
        temperature=settings.get("temperature"),
        max_tokens=settings.get("max_tokens"),
        top_p=settings.get("top_p"),
        options=options or None,
    )


# The optional fields OpenAI documents, with what a valid value is; a null is left out.
# Other fields (OpenRouter's `models`, `transforms`, `plugins`, …) go upstream as given.
OPTIONAL_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "stream": (_of(bool), "a boolean"),
    "temperature": (_number(0, 2), "a number from 0 to 2"),
    "top_p": (_number(0, 1), "a number from 0 to 1"),
    "max_tokens": (_integer(1), "an integer of at least 1"),
    "max_completion_tokens": (_integer(1), "an integer of at least 1"),
    # Each choice is a whole answer billed upstream: n=10**9 must not go there (issue 21.12).
    "n": (_integer(1, MAX_CHOICES), f"an integer from 1 to {MAX_CHOICES}"),
    "presence_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "frequency_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "seed": (_integer(-(2**63)), "an integer"),
    "stop": (_stop, "a string or a list of strings"),
    "logprobs": (_of(bool), "a boolean"),
    "top_logprobs": (_integer(0, 20), "an integer from 0 to 20"),
    "parallel_tool_calls": (_of(bool), "a boolean"),
    "user": (_of(str), "a string"),
    "tool_choice": (_of((str, dict)), "a string or an object"),
    "response_format": (_of(dict), "an object"),
    "stream_options": (_of(dict), "an object"),
    "logit_bias": (_of(dict), "an object"),
    "metadata": (_of(dict), "an object"),
    "reasoning": (_of(dict), "an object"),
    "provider": (_of(dict), "an object"),
    "usage": (_of(dict), "an object"),
}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A checked /v1/chat/completions body. Upstream is always asked to stream (the core
    reads the stream for usage, errors and cancellation); `stream` says what the client gets.

    The body's fields are kept as their encoded JSON: a running chat holds about its
    request's size, not the many times more that decoded messages take (SPEC "Limits").
    """

    model: str
    fields: dict[str, orjson.Fragment]
    stream: bool
    # The client asked for the usage chunk (OpenAI's stream_options or OpenRouter's usage).
    wants_usage: bool
    stream_options: dict[str, Any]
    usage: dict[str, Any]

    def upstream_payload(self) -> dict[str, Any]:
        return {
            **self.fields,
            "stream": True,
            # Asked both ways, like the other transports, so the log counts real tokens.
            "stream_options": {**self.stream_options, "include_usage": True},
            "usage": {**self.usage, "include": True},
        }


def parse_completion_request(data: object) -> CompletionRequest:
    """Check an OpenAI body; BadRequest (400) names the first bad field."""
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object")
    model = _checked_model(data.get("model"), "model")
    _checked_messages(data.get("messages"), OPENAI_ROLES, tool_calls_only=True)
    body = {name: value for name, value in data.items() if value is not None}
    for name, (valid, what) in OPTIONAL_FIELDS.items():
        if name in body and not valid(body[name]):
            raise BadRequest(f"{name} must be {what}")
    tools = body.get("tools")
    if tools is not None:
        _check_tools(tools)
    stream_options = body.pop("stream_options", {})
    usage = body.pop("usage", {})
    stream = body.pop("stream", False)
    return CompletionRequest(
        model=model,
        # compact_json: orjson.dumps keeps its growing buffer (16 MiB for 0.86 MiB of tiny parts).
        fields={name: orjson.Fragment(compact_json(value)) for name, value in body.items()},
        stream=stream,
        wants_usage=bool(stream_options.get("include_usage") or usage.get("include")),
        stream_options=stream_options,
        usage=usage,
    )


def _check_tools(tools: object) -> None:
    if not isinstance(tools, list):
        raise BadRequest("tools must be a list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise BadRequest(f"tools[{index}] must be an object with a string type")


def _checked_model(model: object, field: str) -> str:
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_CHARS:
        raise BadRequest(
            f"{field} must be a non-empty string of at most {MAX_MODEL_CHARS} characters"
        )
    return model


def _checked_messages(
    messages: object, roles: tuple[str, ...], *, tool_calls_only: bool = False
) -> list[object]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    for index, message in enumerate(messages):
        _check_message(index, message, roles, tool_calls_only)
    return messages


def _check_message(
    index: int, message: object, roles: tuple[str, ...], tool_calls_only: bool
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
