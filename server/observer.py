"""ChatObserver: what one chat did, written as its one log line and its metrics when it ends."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .telemetry import ChatMetrics

log = logging.getLogger("server.chat")

CHAT_END_LINE = (
    "chat end id=%(chat_id)s transport=%(transport)s model=%(model)s status=%(status)d "
    "outcome=%(outcome)s finish_reason=%(finish_reason)s tokens=%(tokens)s "
    "ttft_ms=%(ttft_ms)s duration_ms=%(duration_ms)d cancelled=%(cancelled)s "
    "detached=%(detached)s"
)


@dataclass(slots=True)
class ChatObserver:
    """Filled in by the core as the chat streams; `ended()` once, by whoever ran the chat."""

    chat_id: str
    transport: str
    model: str
    metrics: ChatMetrics | None = None
    started: float = field(default_factory=time.monotonic)
    first_text_at: float | None = None
    pieces: int = 0
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    # The chat ran for a while with nobody listening (a closed socket, a resumable POST left).
    detached: bool = False

    def ended(self, status: int, outcome: str) -> None:
        """`outcome` is done, error or cancelled; a shutdown is an error with status 503."""
        usage_tokens = self.usage.get("completion_tokens") if self.usage else None
        tokens = usage_tokens if isinstance(usage_tokens, int) else self.pieces
        first = self.first_text_at
        ttft_ms = None if first is None else round((first - self.started) * 1000)
        duration_ms = round((time.monotonic() - self.started) * 1000)
        fields = {
            # Ids, model names and finish reasons come from outside: the log's formatter
            # (server/telemetry.py) escapes them, so none can forge a line.
            "chat_id": self.chat_id,
            "transport": self.transport,
            "model": self.model,
            "status": status,
            "outcome": outcome,
            "finish_reason": self.finish_reason,
            "tokens": tokens,
            "ttft_ms": ttft_ms,
            "duration_ms": duration_ms,
            "cancelled": outcome == "cancelled",
            "detached": self.detached,
        }
        log.info(CHAT_END_LINE, fields, extra=fields)
        if self.metrics is not None:
            self.metrics.observe_chat(self.transport, outcome, tokens, ttft_ms, duration_ms)
