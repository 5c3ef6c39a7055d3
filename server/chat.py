"""The core: stream a checked chat request from upstream as events, log one line per chat."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from .errors import ChatError, UpstreamError
from .events import ChatEvent, Done
from .metrics import observe_chat
from .openrouter import Upstream
from .request import MAX_MODEL_CHARS, ChatRequest

log = logging.getLogger(__name__)

CHAT_END_LINE = (
    "chat end id=%(chat_id)s transport=%(transport)s model=%(model)s status=%(status)d "
    "outcome=%(outcome)s finish_reason=%(finish_reason)s tokens=%(tokens)s "
    "ttft_ms=%(ttft_ms)s duration_ms=%(duration_ms)d cancelled=%(cancelled)s"
)


async def stream_chat(
    request: ChatRequest, api_key: str, upstream: Upstream, *, transport: str, chat_id: str
) -> AsyncGenerator[ChatEvent, None]:
    """Yield the chat's text as Delta/Reasoning events and end with Done, or raise ChatError.

    Text that arrived in one upstream read is merged into one event. Close the iterator
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
                for event in batch.events:
                    if first_text_at is None:
                        first_text_at = time.monotonic()
                    pieces += 1
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


def _loggable(text: str) -> str:
    """The model name is user input: keep a log line one line."""
    return text.encode("unicode_escape").decode("ascii")[:MAX_MODEL_CHARS]
