"""A /v1/responses body's `input`: its items checked (a 400 naming the first bad one) and
turned into chat messages.

A message's `input_text` parts are text, `input_image` parts `image_url` parts, `input_file`
parts `file` parts; an assistant message (an earlier answer handed back) is its text; a run
of `function_call` items is one assistant turn's `tool_calls`, and a `function_call_output`
item a `tool` message. A `reasoning` item handed back is left out: chat completions have no
place for it.

A stored response keeps every message of its input as its turn (turn_messages): an earlier
answer handed back, a function call and its output too, so nothing is lost from the
conversation that `previous_response_id` continues.
"""

from __future__ import annotations

from typing import Any

from server.errors import BadRequest

ROLES = ("user", "assistant", "system", "developer")


def input_items(value: object) -> list[dict[str, Any]]:
    """The input as OpenAI lists it: items with a `type` (a message's may be left out)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [input_text(value)]}]
    if not isinstance(value, list) or not value:
        raise BadRequest("input must be a string or a non-empty list of items")
    items = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            items.append(message_item(item, where))
        elif kind in ("function_call", "function_call_output"):
            items.append(call_item(item, kind, where))
        elif kind == "reasoning":
            # A reasoning item handed back: chat completions have no place for it.
            continue
        else:
            raise BadRequest(
                f"{where}.type must be message, function_call, function_call_output or reasoning"
            )
    if not items:
        raise BadRequest("input must hold a message or a function call")
    return items


def call_item(item: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    """A function call, or its output, handed back as input."""
    fields = ("call_id", "name", "arguments") if kind == "function_call" else ("call_id",)
    for name in fields:
        if not isinstance(item.get(name), str):
            raise BadRequest(f"{where}.{name} must be a string")
    if kind == "function_call_output" and not isinstance(item.get("output"), str | list):
        raise BadRequest(f"{where}.output must be a string or a list of content parts")
    kept = (*fields, "output") if kind == "function_call_output" else fields
    return {"type": kind, **{k: item[k] for k in kept}}


def input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def message_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        raise BadRequest(f"{where}.role must be one of {', '.join(ROLES)}")
    content = item.get("content")
    if isinstance(content, str):
        part_type = "output_text" if role == "assistant" else "input_text"
        parts: list[dict[str, Any]] = [{"type": part_type, "text": content}]
    elif isinstance(content, list):
        parts = [checked_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    else:
        raise BadRequest(f"{where}.content must be a string or a list of content parts")
    return {"type": "message", "role": role, "content": parts}


def checked_part(part: object, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise BadRequest(f"{where} must be an object")
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        if not isinstance(part.get("text"), str):
            raise BadRequest(f"{where}.text must be a string")
    elif kind == "refusal":
        if not isinstance(part.get("refusal"), str):
            raise BadRequest(f"{where}.refusal must be a string")
    elif kind == "input_image":
        if not isinstance(part.get("image_url"), str):
            raise BadRequest(f"{where}.image_url must be a string (a URL or a data URL)")
    elif kind == "input_file":
        if not isinstance(part.get("file_data") or part.get("file_url"), str):
            raise BadRequest(f"{where}.file_data (or file_url) must be a string")
    else:
        raise BadRequest(
            f"{where}.type must be input_text, input_image, input_file, output_text or refusal"
        )
    return part


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items as chat messages: a run of function calls is one assistant turn's."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "message":
            messages.append(chat_message(item))
        elif item["type"] == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            output = item["output"]
            content = output if isinstance(output, str) else chat_parts(output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
    return messages


def chat_message(item: dict[str, Any]) -> dict[str, Any]:
    role = "system" if item["role"] == "developer" else item["role"]
    parts = item["content"]
    if role == "assistant" or all(
        p["type"] != "input_image" and p["type"] != "input_file" for p in parts
    ):
        # Text only: one string, which every provider takes (an assistant turn must be one).
        return {"role": role, "content": "".join(text_of(p) for p in parts)}
    return {"role": role, "content": chat_parts(parts)}


def text_of(part: dict[str, Any]) -> str:
    text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
    return text if isinstance(text, str) else ""


def chat_parts(parts: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "input_image":
            image = {"url": part.get("image_url")}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            file = {"file_data": part.get("file_data") or part.get("file_url")}
            if isinstance(part.get("filename"), str):
                file["filename"] = part["filename"]
            out.append({"type": "file", "file": file})
        else:
            out.append({"type": "text", "text": text_of(part)})
    return out


def turn_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a stored response writes in the account's history as its turn: the input's chat
    messages, every one, in order (function calls and their outputs included), so that a
    turn continued by `previous_response_id` sends upstream what a stateless client would."""
    return chat_messages(items)
