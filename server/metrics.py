"""GET /metrics: Prometheus counters of chats, sockets, tokens and upstream latency.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn.conf.py) every worker writes its
values to files there and /metrics adds up all the dyno's workers, whichever one answers.
"""

from __future__ import annotations

import os

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
