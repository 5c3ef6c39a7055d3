"""OpenRouter's chat.completion.chunk payloads, one read at a time, turned into chat events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ChatError, UpstreamError
from .events import Delta, Reasoning
from .surrogates import SurrogateMender, decode_lenient, may_hold_surrogates, whole_text

TextEvent = Delta | Reasoning


@dataclass(slots=True)
class Batch:
    """What one upstream read said: its merged events, and how the stream stands after it."""

    events: list[TextEvent]
    # The read's `data:` payloads as upstream sent them, for clients that want its chunks.
    payloads: list[bytes]
    finished: bool = False
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: ChatError | None = None


class ChunkReader:
    """One stream's chunks, read by read; it keeps what spans reads (a cut surrogate pair)."""

    def __init__(self) -> None:
        self._mender = SurrogateMender()

    def read(self, payloads: list[bytes]) -> Batch:
        batch, lenient = _read(payloads)
        if lenient or self._mender.held:
            batch.events = self._mender.mend(batch.events)
            if batch.finished:
                batch.events += self._mender.flush()
        return batch

    def close(self) -> list[TextEvent]:
        """At the end of the body: a half surrogate still held is shown as U+FFFD."""
        return self._mender.flush()


def read_batch(payloads: list[bytes]) -> Batch:
    """One read's payloads on their own (a reader of its own for each call)."""
    return ChunkReader().read(payloads)


def _read(payloads: list[bytes]) -> tuple[Batch, bool]:
    """Merge one read's payloads into events; text before an error in it is kept.

    On the per-token path: plain lookups, and one event per run of the same kind (a read
    of one payload makes its one event directly). The flag says that some payload held
    lone surrogates (the events need mending).
    """
    batch = Batch([], payloads)
    lenient = False
    kinds: list[type[TextEvent]] = []
    texts: list[str] = []
    for payload in payloads:
        if payload == b"[DONE]":
            batch.finished = True
            break
        try:
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                chunk = _decode_lenient(payload)
                lenient = True
            _check_chunk(chunk)
        except UpstreamError as error:
            batch.error = error
            break
        usage = chunk.get("usage")
        if usage is not None and isinstance(usage, dict):
            batch.usage = usage
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            continue
        choice = choices[0]
        finish_reason = choice.get("finish_reason")
        if finish_reason is not None and isinstance(finish_reason, str):
            batch.finish_reason = finish_reason
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        # OpenRouter says `reasoning`; DeepSeek, vLLM and LiteLLM say `reasoning_content`.
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        if reasoning and isinstance(reasoning, str):
            kinds.append(Reasoning)
            texts.append(reasoning)
        content = delta.get("content")
        if content and isinstance(content, str):
            kinds.append(Delta)
            texts.append(content)
    if len(texts) == 1:
        batch.events.append(kinds[0](texts[0]))
    elif texts:
        batch.events = _merged(kinds, texts)
    return batch, lenient


def _merged(kinds: list[type[TextEvent]], texts: list[str]) -> list[TextEvent]:
    """One event per run of texts of the same kind."""
    events: list[TextEvent] = []
    start = 0
    for index in range(1, len(texts) + 1):
        if index == len(texts) or kinds[index] is not kinds[start]:
            events.append(kinds[start]("".join(texts[start:index])))
            start = index
    return events


def read_completion(body: bytes) -> Batch:
    """A server that ignored `stream: true` answered one `chat.completion`: its message as
    one finished batch, whose payload is the chunk a streaming server would have sent."""
    batch = Batch(events=[], payloads=[], finished=True)
    try:
        try:
            completion = orjson.loads(body)
        except orjson.JSONDecodeError:
            completion = _decode_lenient(body)
        _check_chunk(completion)
    except UpstreamError as error:
        batch.error = error
        return batch
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        batch.error = UpstreamError("OpenRouter sent a completion without a message")
        return batch
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if reasoning and isinstance(reasoning, str):
        batch.events.append(Reasoning(content=whole_text(reasoning)))
    content = message.get("content")
    if content and isinstance(content, str):
        batch.events.append(Delta(content=whole_text(content)))
    finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    batch.finish_reason = finish_reason if isinstance(finish_reason, str) else None
    usage = completion.get("usage")
    batch.usage = usage if isinstance(usage, dict) else None
    batch.payloads = [_as_chunk(completion, message, batch)]
    return batch


def _as_chunk(completion: dict[str, Any], message: dict[str, Any], batch: Batch) -> bytes:
    delta: dict[str, Any] = {"role": "assistant"}
    for event in batch.events:
        delta["content" if isinstance(event, Delta) else "reasoning"] = event.content
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        # A stream numbers its tool calls; a completion lists them.
        delta["tool_calls"] = [
            {"index": i, **call} for i, call in enumerate(tool_calls) if isinstance(call, dict)
        ]
    chunk = {
        **{
            k: v
            for k in ("id", "created", "model")
            if isinstance(v := completion.get(k), str | int)
        },
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": batch.finish_reason}],
        "usage": batch.usage,
    }
    return orjson.dumps(chunk)


def _decode_lenient(payload: bytes) -> Any:
    if may_hold_surrogates(payload):
        try:
            return decode_lenient(payload)
        except ValueError:
            pass
    raise UpstreamError("OpenRouter sent an event that is not valid JSON")


def _check_chunk(chunk: Any) -> None:
    if not isinstance(chunk, dict):
        raise UpstreamError("OpenRouter sent an event that is not a JSON object")
    error = chunk.get("error")
    if error is not None:
        raise UpstreamError.from_body(error)
