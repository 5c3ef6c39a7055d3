"""A /v1/responses body checked and translated into the chat completion sent upstream.

OpenAI's Responses API and its chat completions say the same things in two shapes:
`instructions` is a system message, `input` items are messages (a `function_call` item is an
assistant turn's tool call, a `function_call_output` item a `tool` message), a function
tool's fields move under `function`, `text.format` is `response_format` and
`max_output_tokens` is `max_tokens`. Each bad field is a 400 naming it, as on every route.

The request's own fields are echoed in the response object (`ResponseRequest.echo`), and its
input, with an id per item, is what GET /v1/responses/{id}/input_items lists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from server.errors import BadRequest
from server.relay.request import OPTIONAL_FIELDS, _checked_model, compact_json
from server.relay.responses_input import chat_messages, input_items

TOOL_CHOICES = ("auto", "none", "required")
MAX_METADATA_PAIRS = 16
# Options checked as on /v1/chat/completions; a null is the same as leaving it out.
CHECKED = ("temperature", "top_p", "parallel_tool_calls", "user")


@dataclass(frozen=True, slots=True)
class ResponseRequest:
    """A checked Responses body: the chat completion to ask upstream for, and what the
    response object and the input items list say about the request."""

    model: str
    payload: dict[str, orjson.Fragment]
    stream: bool
    background: bool
    store: bool
    previous_response_id: str | None
    echo: dict[str, Any]
    input_items: list[dict[str, Any]]

    def with_context(self, context: list[dict[str, Any]]) -> ResponseRequest:
        """The request with earlier turns (previous_response_id's) before its input."""
        messages = orjson.loads(orjson.dumps(self.payload["messages"]))
        at = 1 if self.echo["instructions"] else 0
        messages[at:at] = context
        payload = {**self.payload, "messages": orjson.Fragment(compact_json(messages))}
        return dataclasses.replace(self, payload=payload)

    def upstream_payload(self) -> dict[str, Any]:
        return {
            **self.payload,
            "stream": True,
            # Usage both ways, as every chat asks (server/relay/request.py).
            "usage": {"include": True},
            "stream_options": {"include_usage": True},
        }


def parse_response_request(data: object) -> ResponseRequest:
    """Check a Responses body; BadRequest (400) names the first bad field."""
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object")
    body = {name: value for name, value in data.items() if value is not None}
    model = _checked_model(body.get("model"), "model")
    check_scalars(body)
    items = input_items(body.get("input"))
    tools = function_tools(body.get("tools", []))
    tool_choice = checked_tool_choice(body.get("tool_choice", "auto"))
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise BadRequest("reasoning must be an object")
    text = checked_text(body.get("text"))
    instructions = body.get("instructions")
    messages = ([{"role": "system", "content": instructions}] if instructions else []) + (
        chat_messages(items)
    )
    payload: dict[str, Any] = {"model": model, "messages": messages}
    payload |= {name: body[name] for name in ("temperature", "top_p", "user") if name in body}
    if "parallel_tool_calls" in body:
        payload["parallel_tool_calls"] = body["parallel_tool_calls"]
    if "max_output_tokens" in body:
        payload["max_tokens"] = body["max_output_tokens"]
    if tools:
        payload["tools"] = [{"type": "function", "function": tool} for tool in tools]
    if tools or "tool_choice" in body:
        payload["tool_choice"] = upstream_tool_choice(tool_choice)
    if reasoning is not None:
        # OpenRouter's reasoning takes the effort; summaries are OpenAI's own.
        upstream = {k: v for k, v in reasoning.items() if k not in ("summary", "generate_summary")}
        payload["reasoning"] = upstream or {"enabled": True}
    if (format_ := response_format(text["format"])) is not None:
        payload["response_format"] = format_
    if isinstance(body.get("provider"), dict):  # OpenRouter's provider routing, as given
        payload["provider"] = body["provider"]
    echo = {
        "model": model,
        "instructions": instructions,
        "tools": [{"type": "function", **tool} for tool in tools],
        "tool_choice": tool_choice,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_output_tokens": body.get("max_output_tokens"),
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": None},
        "text": text,
        "metadata": checked_metadata(body.get("metadata")),
        "user": body.get("user"),
        "truncation": "disabled",
    }
    try:
        fields = {name: orjson.Fragment(compact_json(value)) for name, value in payload.items()}
    except orjson.JSONEncodeError:
        raise BadRequest("input is nested too deeply") from None
    return ResponseRequest(
        model=model,
        payload=fields,
        stream=body.get("stream", False),
        background=body.get("background", False),
        store=body.get("store", True),
        previous_response_id=body.get("previous_response_id"),
        echo=echo,
        input_items=items,
    )


def check_scalars(body: dict[str, Any]) -> None:
    for name in (*CHECKED, "stream"):
        valid, what = OPTIONAL_FIELDS[name]
        if name in body and not valid(body[name]):
            raise BadRequest(f"{name} must be {what}")
    for name in ("background", "store"):
        if name in body and not isinstance(body[name], bool):
            raise BadRequest(f"{name} must be a boolean")
    max_output = body.get("max_output_tokens")
    if max_output is not None and not OPTIONAL_FIELDS["max_tokens"][0](max_output):
        raise BadRequest("max_output_tokens must be an integer of at least 1")
    for name in ("previous_response_id", "instructions"):
        if name in body and not isinstance(body[name], str):
            raise BadRequest(f"{name} must be a string")


def function_tools(tools: object) -> list[dict[str, Any]]:
    """Function tools as chat completions take them under `function`."""
    if not isinstance(tools, list):
        raise BadRequest("tools must be a list")
    out = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise BadRequest(f"{where}.type must be function (only function tools are served)")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise BadRequest(f"{where}.name must be a non-empty string")
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequest(f"{where}.parameters must be an object")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        out.append({"parameters": None, "strict": None, **function})
    return out


def checked_tool_choice(choice: object) -> str | dict[str, Any]:
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return choice
    if (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("name"), str)
    ):
        return {"type": "function", "name": choice["name"]}
    raise BadRequest('tool_choice must be "auto", "none", "required" or a function to call')


def upstream_tool_choice(choice: str | dict[str, Any]) -> object:
    if isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice["name"]}}


def checked_text(text: object) -> dict[str, Any]:
    if text is None:
        return {"format": {"type": "text"}}
    if not isinstance(text, dict):
        raise BadRequest("text must be an object")
    format_ = text.get("format", {"type": "text"})
    kind = format_.get("type") if isinstance(format_, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise BadRequest("text.format.type must be text, json_object or json_schema")
    if kind == "json_schema" and not (
        isinstance(format_.get("name"), str) and isinstance(format_.get("schema"), dict)
    ):
        raise BadRequest("text.format needs a string name and an object schema for json_schema")
    return {**text, "format": format_}


def response_format(format_: dict[str, Any]) -> dict[str, Any] | None:
    if format_["type"] == "text":
        return None
    if format_["type"] == "json_object":
        return {"type": "json_object"}
    schema = {k: format_[k] for k in ("name", "schema", "strict", "description") if k in format_}
    return {"type": "json_schema", "json_schema": schema}


def checked_metadata(metadata: object) -> dict[str, str] | None:
    if metadata is None:
        return None
    if (
        not isinstance(metadata, dict)
        or len(metadata) > MAX_METADATA_PAIRS
        or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in metadata.items()
        )
    ):
        raise BadRequest(
            "metadata must be an object of at most 16 string values (keys of at most 64 "
            "characters, values of at most 512)"
        )
    return metadata
