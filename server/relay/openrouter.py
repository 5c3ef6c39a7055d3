"""The core: stream_chat(), the only code that talks to OpenRouter, through the client
(upstream_client.py): a chat's upstream reads turned into its events, text merged, the
observer told, the last list ending with Done; or, for /v1, upstream's own chunks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, overload

from server.errors import (
    UpstreamError,
)
from server.metrics import ChatObserver
from server.relay.cut import LENGTH, Cut, cut_read
from server.relay.wire import Batch, read_batch
from server.store.events import ChatEvent, Chunks, Done

Batches = AsyncIterator[Batch]


class Upstream(Protocol):
    """What the chat core needs from OpenRouter; tests may pass a scripted fake."""

    def open_chat(
        self, api_key: str, payload: dict[str, Any]
    ) -> AbstractAsyncContextManager[Batches]: ...


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
    max_chars: int | None = None,
) -> AsyncGenerator[list[ChatEvent], None]: ...


@overload
def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    observer: ChatObserver,
    *,
    relay_chunks: Literal[True],
    max_chars: int | None = None,
) -> AsyncGenerator[list[Chunks | Done], None]: ...


async def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    observer: ChatObserver,
    *,
    relay_chunks: bool = False,
    max_chars: int | None = None,
) -> AsyncGenerator[Sequence[ChatEvent | Chunks], None]:
    """Yield the events of each upstream read (text merged); the last list ends with Done.

    With `relay_chunks` a read is one Chunks event of upstream's own payloads instead (for
    /v1); the core still reads them for usage, errors and the end. Raises ChatError when the
    chat fails. Close the iterator (`contextlib.aclosing`) to cancel: the upstream request
    is closed at once. `observer` learns what the chat did; ending it (its log line and
    metrics) is the caller's, who knows how the chat ended.

    With `max_chars` (a metered chat's, web/budget_gate.py) the text and reasoning relayed
    stop at that many characters whatever upstream sends: upstream is closed and the chat
    ends with Done("length") (cut.py).
    """
    # An int compare per read: the most a chat cut at max_chars (cut.py) may relay.
    limit = sys.maxsize if max_chars is None else max_chars
    try:
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
                    texts = batch.events
                    observer.pieces += len(texts)
                    # What a chat cut short without usage is billed for (users/costs.py); a
                    # read is usually one piece of text, counted without a generator.
                    observer.chars += (
                        len(texts[0].content)
                        if len(texts) == 1
                        else sum(len(event.content) for event in texts)
                    )
                    if observer.chars > limit:
                        over, observer.chars = observer.chars - limit, limit
                        observer.finish_reason = LENGTH
                        # Raised to leave upstream's request closed at once, as a cancel does.
                        raise cut_read(
                            texts, batch.payloads, over, request.model, relay_chunks=relay_chunks
                        )
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
                del batch, events  # not held through the wait for the next read
            _check_finished(finished, observer)
            # Inside the `async with`: the client hears "done" before upstream's connection
            # is wound down for reuse.
            yield [*last, Done(observer.finish_reason, observer.usage)]
            return
    except Cut as cut:
        ending: Sequence[ChatEvent | Chunks] = cut.events
    # Cut: upstream is closed, the chat ends as one that upstream ended at max_tokens.
    yield [*ending, Done(LENGTH, observer.usage)]


def _check_finished(finished: bool, observer: ChatObserver) -> None:
    if not finished and observer.finish_reason is None:
        raise UpstreamError("OpenRouter closed the stream before it finished")


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
    if not payloads and not batch.events:
        return []
    # Payloads may be held back while the text is not (redaction.py: the text that may
    # begin the key is held, the payloads with it): /v1/responses logs the text.
    return [Chunks(payloads, has_usage=batch.usage is not None, texts=tuple(batch.events))]
