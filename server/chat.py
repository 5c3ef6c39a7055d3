"""The core: stream a checked chat request from upstream as events, log one line per chat."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, Literal, Protocol, overload

from .chunks import Batch, read_batch
from .errors import ChatError, UpstreamError
from .events import ChatEvent, Chunks, Done
from .metrics import observe_chat
from .openrouter import Upstream
from .request import MAX_MODEL_CHARS

log = logging.getLogger(__name__)

CHAT_END_LINE = (
    "chat end id=%(chat_id)s transport=%(transport)s model=%(model)s status=%(status)d "
    "outcome=%(outcome)s finish_reason=%(finish_reason)s tokens=%(tokens)s "
    "ttft_ms=%(ttft_ms)s duration_ms=%(duration_ms)d cancelled=%(cancelled)s"
)


class UpstreamRequest(Protocol):
    """A checked request: chatbot-ui's (request.py) or OpenAI's (openai_request.py)."""

    @property
    def model(self) -> str: ...

    def upstream_payload(self) -> dict[str, Any]: ...


@overload
def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    *,
    transport: str,
    chat_id: str,
    relay_chunks: Literal[False] = False,
) -> AsyncGenerator[ChatEvent, None]: ...


@overload
def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    *,
    transport: str,
    chat_id: str,
    relay_chunks: Literal[True],
) -> AsyncGenerator[Chunks | Done, None]: ...


async def stream_chat(
    request: UpstreamRequest,
    api_key: str,
    upstream: Upstream,
    *,
    transport: str,
    chat_id: str,
    relay_chunks: bool = False,
) -> AsyncGenerator[ChatEvent | Chunks, None]:
    """Yield the chat's text as Delta/Reasoning events and end with Done, or raise ChatError.

    Text that arrived in one upstream read is merged into one event. With `relay_chunks`
    each read is one Chunks event of upstream's own payloads instead (for /v1); the core
    still reads them for usage, errors and the end. Close the iterator
    (`contextlib.aclosing`) to cancel: the upstream request is closed at once.
    """
    started = time.monotonic()
    first_text_at: float | None = None
    pieces = 0
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    status, outcome = 499, "cancelled"
    try:
        async with upstream.open_chat(api_key, request.upstream_payload()) as batches:
            finished = False
            async for batch in batches:
                finish_reason = batch.finish_reason or finish_reason
                usage = batch.usage or usage
                if batch.events:
                    if first_text_at is None:
                        first_text_at = time.monotonic()
                    pieces += len(batch.events)
                for event in _as_chunks(batch) if relay_chunks else batch.events:
                    yield event
                if batch.error is not None:
                    raise batch.error
                if batch.finished:
                    finished = True
                    break
            if not finished and finish_reason is None:
                raise UpstreamError("OpenRouter closed the stream before it finished")
            status, outcome = 200, "done"
            # Inside the `async with`: the client hears "done" before upstream's connection
            # is wound down for reuse.
            yield Done(finish_reason, usage)
    except ChatError as error:
        status, outcome = error.status, "error"
        raise
    except Exception:
        status, outcome = 500, "error"
        raise
    finally:
        tokens = usage.get("completion_tokens") if usage else None
        tokens = tokens if isinstance(tokens, int) else pieces
        ttft_ms = None if first_text_at is None else round((first_text_at - started) * 1000)
        duration_ms = round((time.monotonic() - started) * 1000)
        fields = {
            "chat_id": chat_id,
            "transport": transport,
            "model": _loggable(request.model),
            "status": status,
            "outcome": outcome,
            "finish_reason": finish_reason,
            "tokens": tokens,
            "ttft_ms": ttft_ms,
            "duration_ms": duration_ms,
            "cancelled": outcome == "cancelled",
        }
        log.info(CHAT_END_LINE, fields, extra=fields)
        observe_chat(transport, outcome, tokens, ttft_ms, duration_ms)


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


def _loggable(text: str) -> str:
    """The model name is user input: keep a log line one line."""
    return text.encode("unicode_escape").decode("ascii")[:MAX_MODEL_CHARS]
