"""One `chat.completion` assembled from upstream's `chat.completion.chunk`s, for `stream: false`.

Upstream is always streamed (the core reads the stream for usage, errors and cancellation),
so a non-streaming client gets what OpenAI would have answered: each choice's deltas merged
into its message, the way OpenAI's own SDK accumulates a stream.

Text arrives a token at a time: its pieces are kept in a list and joined once at the end,
so a long answer costs time linear in its size (joining as it came was quadratic: 10.5 s
of CPU for a 300k-token answer against 2.6 s streamed).
"""

from __future__ import annotations

from typing import Any

import orjson

from server.relay.wire import TEXT_FIELDS, decode_lenient, whole_text

# Fields that name a thing rather than stream it: the last one sent wins, never joined.
# OpenRouter repeats `role` in every delta; tool calls repeat `index` and `type`.
REPLACED_FIELDS = frozenset({"index", "type", "role", "id"})
MENDED_FIELDS = (*TEXT_FIELDS, "refusal")
# Top-level fields of a chunk that describe the whole completion.
COMPLETION_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier", "provider")


class TextPieces(list[str]):
    """A string still arriving: its pieces, joined once by `finished()`."""


class CompletionBuilder:
    """Feed it every payload of the stream; `completion()` is the chat.completion so far."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def feed(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                chunk = decode_lenient(payload)
            if isinstance(chunk, dict):
                self._add_chunk(chunk)

    def _add_chunk(self, chunk: dict[str, Any]) -> None:
        for name in COMPLETION_FIELDS:
            value = chunk.get(name)
            if value is not None:
                self.head.setdefault(name, value)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            merged = self.choices.setdefault(index, {"message": {}})
            delta = choice.get("delta")
            if isinstance(delta, dict):
                accumulate(merged["message"], delta)
            for name, value in choice.items():
                if name in ("delta", "index") or value is None:
                    continue
                # Log probabilities come a token at a time; finish reasons are restated.
                joined = name == "logprobs"
                merged[name] = accumulate_value(merged.get(name), value, name) if joined else value

    def completion(self) -> dict[str, Any]:
        """The chat.completion so far (what was merged stays as it is: call it at the end)."""
        choices = {index: finished(merged) for index, merged in self.choices.items()}
        return {
            "id": self.head.get("id", "chatcmpl-chatrelay"),
            "object": "chat.completion",
            "created": self.head.get("created", 0),
            "model": self.head.get("model", ""),
            **{name: self.head[name] for name in COMPLETION_FIELDS[3:] if name in self.head},
            "choices": [self._choice(i, choices[i]) for i in sorted(choices)],
            "usage": self.usage,
        }

    @staticmethod
    def _choice(index: int, merged: dict[str, Any]) -> dict[str, Any]:
        message = {"role": "assistant", "content": None, **merged["message"]}
        for name in MENDED_FIELDS:
            if isinstance(text := message.get(name), str):
                # Surrogate halves that came in two chunks are one character now.
                message[name] = whole_text(text)
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            # A completion's tool calls are a plain list: `index` only orders a stream's.
            message["tool_calls"] = [
                {k: v for k, v in call.items() if k != "index"} if isinstance(call, dict) else call
                for call in tool_calls
            ]
        choice = {k: v for k, v in merged.items() if k != "message"}
        return {
            "index": index,
            "message": message,
            "logprobs": choice.pop("logprobs", None),
            "finish_reason": choice.pop("finish_reason", None),
            **choice,
        }


def accumulate(into: dict[str, Any], delta: dict[str, Any]) -> None:
    """Merge one delta into what came before: text is joined, lists grow, objects merge."""
    for name, value in delta.items():
        if value is not None:
            into[name] = accumulate_value(into.get(name), value, name)


def accumulate_value(before: object, value: object, name: str) -> object:
    if before is None or name in REPLACED_FIELDS:
        return value
    if isinstance(before, TextPieces) and isinstance(value, str):
        before.append(value)
        return before
    if isinstance(before, str) and isinstance(value, str):
        return TextPieces((before, value))
    if isinstance(before, dict) and isinstance(value, dict):
        accumulate(before, value)
        return before
    if isinstance(before, list) and isinstance(value, list):
        return _accumulate_list(before, value)
    return value


def _accumulate_list(before: list[Any], value: list[Any]) -> list[Any]:
    """Entries with an `index` (tool calls) are pieces of one entry; others are new entries."""
    for entry in value:
        index = entry.get("index") if isinstance(entry, dict) else None
        if not isinstance(index, int):
            before.append(entry)
            continue
        same = next(
            (e for e in before if isinstance(e, dict) and e.get("index") == index),
            None,
        )
        if same is None:
            before.append(dict(entry))
        else:
            accumulate(same, entry)
    return before


def finished(value: Any) -> Any:
    """`value` with every TextPieces joined into its string, at any depth."""
    if isinstance(value, TextPieces):
        return "".join(value)
    if isinstance(value, dict):
        return {name: finished(item) for name, item in value.items()}
    if isinstance(value, list):
        return [finished(item) for item in value]
    return value
