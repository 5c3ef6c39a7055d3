"""What the server counts: Prometheus metrics, and what each chat did (ChatObserver).

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by server/gunicorn_conf.py) every worker writes
its metrics to files there and /metrics adds up all the dyno's workers, whichever one
answers. ChatObserver is what one chat did, written as its one log line and its metrics
when it ends.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.multiprocess import MultiProcessCollector

TRANSPORTS = ("http", "sse", "ws", "v1")
OUTCOMES = ("done", "error", "cancelled")
# Models think for a while: first tokens take from a fraction of a second to minutes.
FIRST_TOKEN_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120)
DURATION_BUCKETS_S = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ChatMetrics:
    """The app's metrics in its own registry, so several apps in one process never clash."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.chats_running = Gauge(
            "chatrelay_chats_running",
            "Chats streaming now, every transport",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.sockets_open = Gauge(
            "chatrelay_websockets_open",
            "WebSockets open now",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.chats = Counter(
            "chatrelay_chats",
            "Chats ended, by transport and outcome",
            ["transport", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "chatrelay_tokens_relayed",
            "Completion tokens relayed (upstream's usage, else text pieces sent)",
            ["transport"],
            registry=registry,
        )
        self.first_token = Histogram(
            "chatrelay_upstream_first_token_seconds",
            "Time from the chat's start to upstream's first text",
            ["transport"],
            buckets=FIRST_TOKEN_BUCKETS_S,
            registry=registry,
        )
        self.duration = Histogram(
            "chatrelay_chat_duration_seconds",
            "Time from a chat's start to its end",
            ["transport"],
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self.spend = Counter(
            "chatrelay_spend_usd",
            "US dollars spent by accounts' chats (upstream's usage.cost, else the model's price)",
            registry=registry,
        )
        # Every series exists from the start, at 0, so rates work from the first scrape.
        for transport in TRANSPORTS:
            self.tokens.labels(transport)
            for outcome in OUTCOMES:
                self.chats.labels(transport, outcome)

    def observe_chat(
        self, transport: str, outcome: str, tokens: int, ttft_ms: int | None, duration_ms: int
    ) -> None:
        self.chats.labels(transport, outcome).inc()
        self.tokens.labels(transport).inc(tokens)
        if ttft_ms is not None:
            self.first_token.labels(transport).observe(ttft_ms / 1000)
        self.duration.labels(transport).observe(duration_ms / 1000)

    def scrape_registry(self) -> CollectorRegistry:
        """What /metrics renders: this app's registry, or every worker's files under gunicorn."""
        directory = multiprocess_dir()
        if directory is None:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return registry


metrics_key = web.AppKey("metrics", ChatMetrics)


def setup_metrics(app: web.Application) -> None:
    metrics = app[metrics_key] = ChatMetrics()
    # access.py applies the /api/* rule (ACCESS_TOKEN) to /metrics as well.
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.scrape_registry()))


chat_log = logging.getLogger("server.chat")

CHAT_END_LINE = (
    "chat end id=%(chat_id)s transport=%(transport)s model=%(model)s status=%(status)d "
    "outcome=%(outcome)s finish_reason=%(finish_reason)s tokens=%(tokens)s "
    "ttft_ms=%(ttft_ms)s duration_ms=%(duration_ms)d cancelled=%(cancelled)s "
    "detached=%(detached)s account=%(account)s cost_usd=%(cost_usd)s"
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
    # Characters of text and reasoning relayed: what a chat cut short is billed by.
    chars: int = 0
    # The signed-in account's id, and the chat's cost in US dollars when known (Budgets).
    account_id: str | None = None
    cost_usd: float | None = None

    def ended(self, status: int, outcome: str) -> None:
        """`outcome` is done, error or cancelled; a shutdown is an error with status 503."""
        usage_tokens = self.usage.get("completion_tokens") if self.usage else None
        tokens = usage_tokens if isinstance(usage_tokens, int) else self.pieces
        first = self.first_text_at
        ttft_ms = None if first is None else round((first - self.started) * 1000)
        duration_ms = round((time.monotonic() - self.started) * 1000)
        fields = {
            # Ids, model names and finish reasons come from outside: the log's formatter
            # (TextFormatter, JsonFormatter) escapes them, so none can forge a line.
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
            "account": self.account_id,
            "cost_usd": self.cost_usd,
        }
        chat_log.info(CHAT_END_LINE, fields, extra=fields)
        if self.metrics is not None:
            self.metrics.observe_chat(self.transport, outcome, tokens, ttft_ms, duration_ms)
