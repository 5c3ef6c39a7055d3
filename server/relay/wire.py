"""OpenRouter's wire format decoded: SSE bytes into `data:` payloads, chunk JSON into events.

Each network read goes through SSEDecoder (lines split on bytes, LF, CRLF or a lone CR, one
event at most MAX_EVENT_BYTES), then ChunkReader (one read's chat.completion.chunk payloads
merged into Delta and Reasoning events, [DONE], usage, finish reason, an error chunk).
JavaScript servers may cut a UTF-16 surrogate pair across two chunks: `"\\ud83c"` then
`"\\udf89"` is valid JSON that orjson refuses (a lone surrogate is no Unicode character); the
stdlib decoder reads it, and the halves are joined here before the text reaches any
transport. Only payloads orjson refused come this way: the common chunk pays nothing.

It stays whole (over 300 lines): its two steps are one format read in one pass per read,
and the surrogate mending between them serves the stream and the lone chat.completion alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from server.errors import ChatError, UpstreamError
from server.store.events import Delta, Reasoning, Text

# SPEC "Limits": one event over this ends the chat. A hostile upstream that never sends the
# blank line (or never ends a line) would otherwise grow one event without limit.
MAX_EVENT_BYTES = 1024 * 1024


class SSEDecoder:
    """Feed it each read; it returns the `data:` payloads of the events that read completed.

    Lines are split on bytes, so a UTF-8 character cut between reads is joined before it
    is decoded; comments such as `: OPENROUTER PROCESSING` and other fields are skipped;
    LF, CRLF and a lone CR all end a line, as the standard allows; several `data:` lines
    of one event are joined by `\\n`. Plain methods, not an async generator: one less
    generator step per read on the per-token path.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[bytes] = []
        self._data_bytes = 0
        # The last read ended in CR: an LF starting the next one is the rest of a CRLF.
        self._after_cr = False

    def feed(self, read: bytes) -> list[bytes]:
        if self._after_cr:
            self._after_cr = False
            read = read.removeprefix(b"\n")
        if b"\r" in read:
            self._after_cr = read.endswith(b"\r")
            read = read.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif (
            # The per-token path: a read that is one whole `data: ...` event, nothing held.
            read.startswith(b"data: ")
            and read.endswith(b"\n\n")
            and read.count(b"\n") == 2
            and not self._pending
            and not self._data
            and len(read) <= MAX_EVENT_BYTES
        ):
            return [read[6:-2]]
        lines = (self._pending + read).split(b"\n")
        self._pending = lines.pop()
        payloads: list[bytes] = []
        data = self._data
        size = self._data_bytes
        for line in lines:
            if not line:
                if data:
                    payloads.append(b"\n".join(data))
                    data.clear()
                    size = 0
            elif line.startswith(b"data:"):
                # What follows `data:`, less the one space the standard allows after it.
                value = line[6:] if line[5:6] == b" " else line[5:]
                size += len(value) + 1
                data.append(value)
        # Checked once per read: an event can pass the cap by at most one read's bytes.
        self._data_bytes = size
        if len(self._pending) + size > MAX_EVENT_BYTES:
            raise UpstreamError("OpenRouter sent an event larger than 1 MiB")
        return payloads

    def close(self) -> list[bytes]:
        """At the end of the body: servers that omit the last blank line still meant it."""
        payloads = self.feed(b"\n\n") if self._pending or self._data else []
        self._after_cr = False
        return payloads


SURROGATE = re.compile("[\ud800-\udfff]")
HIGH_SURROGATES = ("\ud800", "\udbff")
# The delta fields whose text is mended across chunks; every other string is mended alone.
TEXT_FIELDS = ("content", "reasoning", "reasoning_content")


def decode_lenient(payload: bytes) -> Any:
    """What orjson refused, read as JSON that may hold lone surrogates (a JavaScript server's
    escapes): the delta's text keeps its halves (for `SurrogateMender`), every other string
    gets U+FFFD for a half. UpstreamError when it is not JSON after all."""
    # Only a `\ud...` escape can be a lone surrogate: anything else orjson refused is not JSON.
    if b"\\ud" in payload or b"\\uD" in payload:
        try:
            return _decode_surrogates(payload)
        except ValueError:
            pass
    raise UpstreamError("OpenRouter sent an event that is not valid JSON")


def _decode_surrogates(payload: bytes) -> Any:
    try:
        chunk = json.loads(payload)
        if not isinstance(chunk, dict):
            return chunk
        delta = _first_delta(chunk)
        texts = {k: v for k in TEXT_FIELDS if isinstance(v := delta.get(k), str)} if delta else {}
        chunk = _scrub(chunk)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if texts:
        _first_delta(chunk).update(texts)  # type: ignore[union-attr]
    return chunk


def whole_text(text: str) -> str:
    """Join each surrogate pair into its character; a lone half becomes U+FFFD."""
    if SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class SurrogateMender:
    """Per stream: a text that ends in a high surrogate keeps it back for the next text of
    the same kind, so the character comes whole."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}

    def mend(self, events: list[Text]) -> list[Text]:
        mended: list[Text] = []
        for event in events:
            text = self.held.pop(event.kind, "") + event.content
            if text and HIGH_SURROGATES[0] <= text[-1] <= HIGH_SURROGATES[1]:
                self.held[event.kind] = text[-1]
                text = text[:-1]
            if text:
                mended.append(type(event)(content=whole_text(text)))
        return mended

    def flush(self) -> list[Text]:
        """At the end of the stream a half still held never got its pair."""
        events: list[Text] = [
            Delta(content="\ufffd") if kind == "delta" else Reasoning(content="\ufffd")
            for kind in self.held
        ]
        self.held.clear()
        return events


def _first_delta(chunk: dict[str, Any]) -> dict[str, Any] | None:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            return delta
    return None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return whole_text(value)
    if isinstance(value, dict):
        return {whole_text(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


@dataclass(slots=True)
class Batch:
    """What one upstream read said: its merged events, and how the stream stands after it."""

    events: list[Text]
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

    def close(self) -> list[Text]:
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
    kinds: list[type[Text]] = []
    texts: list[str] = []
    for payload in payloads:
        if payload == b"[DONE]":
            batch.finished = True
            break
        try:
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                chunk = decode_lenient(payload)
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


def _merged(kinds: list[type[Text]], texts: list[str]) -> list[Text]:
    """One event per run of texts of the same kind."""
    events: list[Text] = []
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
            completion = decode_lenient(body)
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


def _check_chunk(chunk: Any) -> None:
    if not isinstance(chunk, dict):
        raise UpstreamError("OpenRouter sent an event that is not a JSON object")
    error = chunk.get("error")
    if error is not None:
        raise UpstreamError.from_body(error)
