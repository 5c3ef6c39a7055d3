"""The core: stream a checked chat request from upstream as batches of events."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Literal, Protocol, overload

from .errors import UpstreamError
from .openrouter import Upstream
from .store import ChatEvent, Chunks, Done
from .telemetry import ChatObserver
from .wire import Batch, read_batch


class UpstreamRequest(Protocol):
    """A checked request: chatbot-ui's or OpenAI's (both in request.py)."""

    @property
    def model(self) -> str: ...

    def upstream_payload(self) -> dict[str, Any]: ...


@overload
def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    observer: ChatObserver,
    *,
    relay_chunks: Literal[False] = False,
) -> AsyncGenerator[list[ChatEvent], None]: ...


@overload
def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    observer: ChatObserver,
    *,
    relay_chunks: Literal[True],
) -> AsyncGenerator[list[Chunks | Done], None]: ...


async def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    observer: ChatObserver,
    *,
    relay_chunks: bool = False,
) -> AsyncGenerator[Sequence[ChatEvent | Chunks], None]:
    """Yield the events of each upstream read (text merged); the last list ends with Done.

    With `relay_chunks` a read is one Chunks event of upstream's own payloads instead (for
    /v1); the core still reads them for usage, errors and the end. Raises ChatError when the
    chat fails. Close the iterator (`contextlib.aclosing`) to cancel: the upstream request
    is closed at once. `observer` learns what the chat did; ending it (its log line and
    metrics) is the caller's, who knows how the chat ended.
    """
    async with upstream.open_chat(api_key, request.upstream_payload()) as batches:
        finished = False
        last: Sequence[ChatEvent | Chunks] = []
        async for batch in batches:
            if batch.finish_reason is not None:
                observer.finish_reason = batch.finish_reason
            if batch.usage is not None:
                observer.usage = batch.usage
            if batch.events:
                if observer.first_text_at is None:
                    observer.first_text_at = time.monotonic()
                observer.pieces += len(batch.events)
            events = _as_chunks(batch) if relay_chunks else batch.events
            if batch.error is not None:
                if events:
                    yield events
                raise batch.error
            if batch.finished:
                finished, last = True, events
                break
            if events:
                yield events
        if not finished and observer.finish_reason is None:
            raise UpstreamError("OpenRouter closed the stream before it finished")
        # Inside the `async with`: the client hears "done" before upstream's connection is
        # wound down for reuse.
        yield [*last, Done(observer.finish_reason, observer.usage)]


def _as_chunks(batch: Batch) -> list[Chunks]:
    """The read's payloads before `[DONE]` or an error chunk, which end the stream in the
    client's own framing (Done, ChatError). Only a chat's last read is looked at twice."""
    payloads = batch.payloads
    if batch.finished or batch.error is not None:
        for index, payload in enumerate(payloads):
            alone = read_batch([payload])
            if alone.finished or alone.error is not None:
                payloads = payloads[:index]
                break
    return [Chunks(payloads, has_usage=batch.usage is not None)] if payloads else []
