"""OpenAI's chat completion request body, checked field by field and passed upstream as given."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import BadRequest
from .request import MAX_MODEL_CHARS, check_message, compact_json

# SPEC's roles, plus OpenAI's `developer` (its newer name for `system`), which the SDKs'
# own examples send; OpenRouter and OpenAI accept it.
ROLES = ("system", "developer", "user", "assistant", "tool")


def _number(low: float, high: float) -> Callable[[object], bool]:
    def check(value: object) -> bool:
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


# The optional fields OpenAI documents, with what a valid value is; a null is left out.
# Other fields (OpenRouter's `models`, `transforms`, `plugins`, …) go upstream as given.
OPTIONAL_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "stream": (_of(bool), "a boolean"),
    "temperature": (_number(0, 2), "a number from 0 to 2"),
    "top_p": (_number(0, 1), "a number from 0 to 1"),
    "max_tokens": (_integer(1), "an integer of at least 1"),
    "max_completion_tokens": (_integer(1), "an integer of at least 1"),
    "n": (_integer(1), "an integer of at least 1"),
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
    model = data.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_CHARS:
        raise BadRequest(
            f"model must be a non-empty string of at most {MAX_MODEL_CHARS} characters"
        )
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    for index, message in enumerate(messages):
        check_message(index, message, ROLES, tool_calls_only=True)
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
