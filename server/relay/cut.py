"""A chat cut at a number of characters relayed: a metered chat's `max_tokens` times 4, the
measure its settlement uses (SPEC "Budgets"), so an upstream that ignores the `max_tokens`
it was sent cannot take the chat past its reservation.

The read that passes the limit keeps its text (answer and reasoning) up to it and no more;
for /v1 its chunks become that text and a last chunk with `finish_reason: "length"`, as an
upstream that kept to `max_tokens` would have ended. `stream_chat` (openrouter.py) then
closes upstream, as a cancel does, and ends the chat with Done("length"). This runs once
per chat at most: the per-token path only compares the count the observer keeps.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from server.store.events import Chunks, Delta, Text

LENGTH = "length"
# The chunk fields that name the completion, copied from upstream's into the ones made here.
HEAD_FIELDS = ("id", "object", "created", "model", "provider", "system_fingerprint")


class Cut(Exception):
    """Raised inside upstream's request to leave it closed at once (as a cancel does),
    carrying what the chat's last read may still relay."""

    def __init__(self, events: list[Text] | list[Chunks]) -> None:
        super().__init__("cut at the chat's limit")
        self.events = events


def trimmed(events: list[Text], keep: int) -> list[Text]:
    """The first `keep` characters of the events' text, in their order and kinds."""
    out: list[Text] = []
    for event in events:
        if keep <= 0:
            break
        text = event.content[:keep]
        keep -= len(text)
        out.append(event if len(text) == len(event.content) else type(event)(text))
    return out


def cut_read(
    events: list[Text], payloads: list[bytes], over: int, model: str, *, relay_chunks: bool
) -> Cut:
    """The read whose text went `over` characters past the limit, cut at it."""
    keep = sum(len(event.content) for event in events) - over
    texts = trimmed(events, keep)
    if not relay_chunks:
        return Cut(texts)
    return Cut([Chunks(cut_chunks(payloads, texts, model), has_usage=False, texts=tuple(texts))])


def cut_chunks(payloads: list[bytes], texts: list[Text], model: str) -> list[bytes]:
    """Chunks of upstream's shape (its id, model, …) for the text kept, then the finish."""
    head = _head(payloads, model)
    # Reasoning under the name this upstream uses (OpenRouter's `reasoning`, or vLLM's…).
    vllm = any(b'"reasoning_content"' in payload for payload in payloads)
    thought = "reasoning_content" if vllm else "reasoning"
    chunks = [
        _chunk(head, {"content" if isinstance(text, Delta) else thought: text.content}, None)
        for text in texts
    ]
    chunks.append(_chunk(head, {}, LENGTH))
    return [orjson.dumps(chunk) for chunk in chunks]


def _chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _head(payloads: list[bytes], model: str) -> dict[str, Any]:
    for payload in payloads:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict) and "id" in chunk:
            head = {name: chunk[name] for name in HEAD_FIELDS if name in chunk}
            return {"object": "chat.completion.chunk", **head}
    # Every payload of the read was held back with text that might begin the key.
    return {
        "id": "chatcmpl-chatrelay",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
