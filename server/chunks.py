"""OpenRouter's chat.completion.chunk payloads, one read at a time, turned into chat events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ChatError, UpstreamError
from .events import ChatEvent, Delta, Reasoning


@dataclass(slots=True)
class Batch:
    """What one upstream read said: its merged events, and how the stream stands after it."""

    events: list[ChatEvent]
    # The read's `data:` payloads as upstream sent them, for clients that want its chunks.
    payloads: list[bytes]
    finished: bool = False
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: ChatError | None = None


def read_batch(payloads: list[bytes]) -> Batch:
    """Merge one read's payloads into events; text before an error in it is kept.

    On the per-token path: plain lookups, and one event per run of the same kind.
    """
    batch = Batch(events=[], payloads=payloads)
    runs: list[tuple[type[Delta] | type[Reasoning], list[str]]] = []
    for payload in payloads:
        if payload == b"[DONE]":
            batch.finished = True
            break
        try:
            chunk = _decode_chunk(payload)
        except UpstreamError as error:
            batch.error = error
            break
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            batch.usage = usage
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            continue
        choice = choices[0]
        finish_reason = choice.get("finish_reason")
        if isinstance(finish_reason, str):
            batch.finish_reason = finish_reason
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        reasoning = delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            _add(runs, Reasoning, reasoning)
        content = delta.get("content")
        if content and isinstance(content, str):
            _add(runs, Delta, content)
    batch.events = [kind(content="".join(parts)) for kind, parts in runs]
    return batch


def _add(
    runs: list[tuple[type[Delta] | type[Reasoning], list[str]]],
    kind: type[Delta] | type[Reasoning],
    text: str,
) -> None:
    if runs and runs[-1][0] is kind:
        runs[-1][1].append(text)
    else:
        runs.append((kind, [text]))


def _decode_chunk(payload: bytes) -> dict[str, Any]:
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamError("OpenRouter sent an event that is not valid JSON") from None
    if not isinstance(chunk, dict):
        raise UpstreamError("OpenRouter sent an event that is not a JSON object")
    error = chunk.get("error")
    if error is not None:
        raise UpstreamError.from_body(error)
    return chunk
