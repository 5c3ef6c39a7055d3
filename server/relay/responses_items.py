"""A response's output items as upstream's deltas build them, and the events that say so.

Text of one kind goes to the item open for it (a `message`'s `output_text` or `refusal` part,
a `reasoning` item's `reasoning_text` part); text of another kind, or a tool call, closes it
first, so items and parts open and close in order, as OpenAI's own streams do. Tool calls
stay open until text follows them or the response ends: a model may stream parallel calls'
arguments interleaved. Ids are made from the response's id and the item's place, so every
reader of the log makes the same ones.
"""

from __future__ import annotations

from typing import Any

from server.relay.wire import HIGH_SURROGATES, whole_text

Event = dict[str, Any]
ID_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc"}
DELTA_EVENT = {
    "output_text": "response.output_text.delta",
    "refusal": "response.refusal.delta",
    "reasoning_text": "response.reasoning_text.delta",
}
DONE_EVENT = {
    "output_text": "response.output_text.done",
    "refusal": "response.refusal.done",
    "reasoning_text": "response.reasoning_text.done",
}


class Part:
    __slots__ = ("pieces", "type")

    def __init__(self, kind: str) -> None:
        self.type = kind
        self.pieces: list[str] = []

    def text(self) -> str:
        if len(self.pieces) > 1:
            self.pieces = ["".join(self.pieces)]
        return self.pieces[0] if self.pieces else ""

    def obj(self) -> dict[str, Any]:
        if self.type == "refusal":
            return {"type": "refusal", "refusal": self.text()}
        if self.type == "output_text":
            return {"type": "output_text", "text": self.text(), "annotations": [], "logprobs": []}
        return {"type": self.type, "text": self.text()}


class Item:
    __slots__ = ("call_id", "id", "index", "name", "parts", "status", "type")

    def __init__(self, kind: str, index: int, item_id: str) -> None:
        self.type, self.index, self.id = kind, index, item_id
        self.status = "in_progress"
        self.parts: list[Part] = []  # a function call's one part is its arguments
        self.call_id = ""
        self.name = ""

    def obj(self) -> dict[str, Any]:
        if self.type == "function_call":
            arguments = self.parts[0].text() if self.parts else ""
            return {
                "id": self.id,
                "type": "function_call",
                "status": self.status,
                "call_id": self.call_id,
                "name": self.name,
                "arguments": arguments,
            }
        content = [part.obj() for part in self.parts]
        if self.type == "reasoning":
            return {
                "id": self.id,
                "type": "reasoning",
                "status": self.status,
                "summary": [],
                "content": content,
            }
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "status": self.status,
            "content": content,
        }


class OutputItems:
    def __init__(self, base: str) -> None:
        self.base = base
        self.items: list[Item] = []
        self.text_item: Item | None = None  # the open message or reasoning item
        self.calls: dict[int, Item] = {}  # open function calls by upstream's index
        self.held = ""  # a high surrogate waiting for its pair, from the last text

    def _open(self, kind: str) -> tuple[Item, Event]:
        index = len(self.items)
        item = Item(kind, index, f"{ID_PREFIX[kind]}_{self.base}o{index}")
        self.items.append(item)
        return item, {
            "type": "response.output_item.added",
            "output_index": index,
            "item": item.obj(),
        }

    def text(self, kind: str, part_type: str, text: str, exact: bool = True) -> list[Event]:
        """`exact`: orjson read it, so it holds no surrogate half to mend."""
        if not text:
            return []
        if not exact or self.held:
            text = self.held + text
            self.held = ""
            if HIGH_SURROGATES[0] <= text[-1] <= HIGH_SURROGATES[1]:
                self.held, text = text[-1], text[:-1]
                if not text:
                    return []
            text = whole_text(text)
        out: list[Event] = []
        item = self.text_item
        if item is None or item.type != kind:
            out += self.close_all("completed")
            item, added = self._open(kind)
            self.text_item = item
            out.append(added)
        part = item.parts[-1] if item.parts else None
        if part is None or part.type != part_type:
            if part is not None:
                out += self._close_part(item, len(item.parts) - 1)
            part = Part(part_type)
            item.parts.append(part)
            out.append(
                {
                    "type": "response.content_part.added",
                    "item_id": item.id,
                    "output_index": item.index,
                    "content_index": len(item.parts) - 1,
                    "part": part.obj(),
                }
            )
        part.pieces.append(text)
        delta = {
            "type": DELTA_EVENT[part_type],
            "item_id": item.id,
            "output_index": item.index,
            "content_index": len(item.parts) - 1,
            "delta": text,
        }
        if part_type == "output_text":
            delta["logprobs"] = []
        out.append(delta)
        return out

    def tool_call(self, call: dict[str, Any]) -> list[Event]:
        index = call.get("index")
        if not isinstance(index, int):
            # Some servers leave `index` out: a call with a new id is a new call.
            known = next((i for i, c in self.calls.items() if c.call_id == call.get("id")), None)
            index = known if known is not None else (len(self.calls) if call.get("id") else 0)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        out: list[Event] = []
        item = self.calls.get(index)
        if item is None:
            out += self._close_text("completed")
            item, _ = self._open("function_call")
            call_id = call.get("id")
            item.call_id = call_id if isinstance(call_id, str) and call_id else f"call_{item.id}"
            name = function.get("name")
            item.name = name if isinstance(name, str) else ""
            item.parts.append(Part("arguments"))
            self.calls[index] = item
            out.append(
                {
                    "type": "response.output_item.added",
                    "output_index": item.index,
                    "item": item.obj(),
                }
            )
        elif not item.name and isinstance(function.get("name"), str):
            item.name = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.parts[0].pieces.append(arguments)
            out.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item.id,
                    "output_index": item.index,
                    "delta": arguments,
                }
            )
        return out

    def _close_part(self, item: Item, content_index: int) -> list[Event]:
        part = item.parts[content_index]
        where = {"item_id": item.id, "output_index": item.index, "content_index": content_index}
        done: Event = {"type": DONE_EVENT[part.type], **where}
        if part.type == "refusal":
            done["refusal"] = part.text()
        else:
            done["text"] = part.text()
        if part.type == "output_text":
            done["logprobs"] = []
        return [done, {"type": "response.content_part.done", **where, "part": part.obj()}]

    def _close_text(self, status: str) -> list[Event]:
        item, self.text_item = self.text_item, None
        if item is None:
            return []
        out: list[Event] = []
        if self.held:  # a half that never got its pair
            self.held = ""
            if item.parts:
                item.parts[-1].pieces.append("\ufffd")
        if item.parts:
            out += self._close_part(item, len(item.parts) - 1)
        item.status = status
        out.append(
            {"type": "response.output_item.done", "output_index": item.index, "item": item.obj()}
        )
        return out

    def _close_calls(self, status: str) -> list[Event]:
        out: list[Event] = []
        for item in sorted(self.calls.values(), key=lambda i: i.index):
            item.status = status
            out.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item.id,
                    "output_index": item.index,
                    "name": item.name,
                    "arguments": item.parts[0].text(),
                }
            )
            out.append(
                {
                    "type": "response.output_item.done",
                    "output_index": item.index,
                    "item": item.obj(),
                }
            )
        self.calls.clear()
        return out

    def close_all(self, status: str) -> list[Event]:
        """Close what is open, in the order it was opened."""
        text_first = self.text_item is not None and all(
            self.text_item.index < c.index for c in self.calls.values()
        )
        if text_first:
            return self._close_text(status) + self._close_calls(status)
        return self._close_calls(status) + self._close_text(status)

    def snapshot(self) -> list[dict[str, Any]]:
        return [item.obj() for item in self.items]


def usage_of(usage: object) -> dict[str, Any] | None:
    """Upstream's chat usage in the Responses API's words (OpenRouter's cost kept)."""
    if not isinstance(usage, dict):
        return None

    def count(value: object) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt = usage.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = usage.get("completion_tokens_details")
    completion = completion if isinstance(completion, dict) else {}
    input_tokens, output_tokens = (
        count(usage.get("prompt_tokens")),
        count(usage.get("completion_tokens")),
    )
    out: dict[str, Any] = {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": count(prompt.get("cached_tokens")),
            "cache_write_tokens": count(prompt.get("cache_write_tokens")),
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": count(completion.get("reasoning_tokens"))},
        "total_tokens": count(usage.get("total_tokens")) or input_tokens + output_tokens,
    }
    if isinstance(usage.get("cost"), int | float):
        out["cost"] = usage["cost"]
    return out
