"""The app's one Redis client (REDIS_URL), and what Redis being down means to a user (a 503).

The client connects lazily and reconnects by itself, so Redis being down at start-up or
going away later never stops the process: each command that cannot reach it raises, and
`store_errors()` turns that into 503 `Chat store unavailable` for the one request. The
limits counted on it are in redis_limits.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.config import Settings, settings_key
from server.errors import ChatStoreUnavailable

log = logging.getLogger(__name__)

# A Redis that does not answer fails a chat within seconds instead of hanging it; a URL's own
# `socket_timeout` / `socket_connect_timeout` parameters win over these.
REDIS_CONNECT_TIMEOUT_S = 2.0
# Blocking reads (XREAD BLOCK, BLPOP) must block for less than this, or they time out.
REDIS_SOCKET_TIMEOUT_S = 10.0
# One quick retry: after a Redis restart the pooled connections are dead, and the retry on a
# fresh one is what makes the first command after it work. More would only delay the 503.
REDIS_RETRY = Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1)
# Connections a process opens at most, however many chats it runs: its logs go out in one
# call at a time and its listeners share one blocking read (server/store/redis_follow.py), so only
# short commands (a chat's start, a check) use the rest, and a burst of them waits up to
# REDIS_POOL_WAIT_S for a free one instead of failing. Two workers fit a small plan's cap
# (Heroku's mini: 20); the URL's max_connections wins. The wait is long because only a busy
# pool waits: a Redis that is away refuses the connection at once, and one that does not
# answer fails each command at the socket timeout.
REDIS_MAX_CONNECTIONS = 8
REDIS_POOL_WAIT_S = 20.0

redis_key: web.AppKey[Redis | None] = web.AppKey("redis")


# What a command raises when Redis cannot be reached or does not answer in time (redis-py
# wraps most socket errors; a few, and TLS handshake failures, come through as OSError).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class ClosedWriteIsConnectionError(AbstractConnection):
    """A write on a connection that another task closed meanwhile (its writer gone) raises
    redis-py's ConnectionError, which its retry and our 503 handle, not a raw AttributeError or
    TypeError: redis-py 8.1 lets those escape (redis/redis-py#4287, fixed by #4288 after 8.1)."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except (AttributeError, TypeError) as error:  # redis-py has disconnected it already
            raise RedisConnectionError("Connection closed while writing to it") from error


def make_redis(settings: Settings) -> Redis | None:
    """A client for REDIS_URL (no connection is made yet), or None without one.

    For rediss:// the certificate is checked unless the URL's `ssl_cert_reqs` parameter (or
    REDIS_SSL_CERT_REQS) says `none`: platforms' Redis add-ons serve a self-signed one.
    """
    if settings.redis_url is None:
        return None
    options: dict[str, Any] = {
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        "retry": REDIS_RETRY,
        "health_check_interval": 30,
    }
    parts = urlsplit(settings.redis_url)
    if parts.scheme == "rediss" and "ssl_cert_reqs" not in parse_qs(parts.query):
        options["ssl_cert_reqs"] = settings.redis_ssl_cert_reqs
    # The URL's query parameters override these options (redis-py's from_url).
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_POOL_WAIT_S,
        **options,
    )
    # The URL picks the connection class (TCP, TLS, Unix socket); each gets the guard.
    base = pool.connection_class
    pool.connection_class = type(base.__name__, (ClosedWriteIsConnectionError, base), {})
    client: Redis = Redis.from_pool(pool)
    return client


def redis_address(client: Redis) -> str:
    """host:port (or the socket path) for log lines: never the URL, which holds the password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


REDIS_OUTAGE_LOG_S = 10.0


class OutageLog:
    """A warning when Redis goes away, then one per REDIS_OUTAGE_LOG_S while it stays away
    (with how many failures it stands for), and one line when it answers again: an outage
    under load must not write a line per refused chat or per chat kept in memory."""

    def __init__(self) -> None:
        self.last_at = -REDIS_OUTAGE_LOG_S
        self.unlogged = 0
        self.away_since: float | None = None

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        self.unlogged += 1
        if self.away_since is None:
            self.away_since = now
        if now - self.last_at >= REDIS_OUTAGE_LOG_S:
            log.warning("Redis unavailable (%s), %d failures", type(error).__name__, self.unlogged)
            self.last_at, self.unlogged = now, 0

    def answered(self) -> None:
        if self.away_since is not None:
            log.info("Redis is back after %.1f s", time.monotonic() - self.away_since)
            self.away_since, self.last_at, self.unlogged = None, -REDIS_OUTAGE_LOG_S, 0


outage_log = OutageLog()


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn 'Redis cannot be reached' inside into ChatStoreUnavailable (503)."""
    try:
        yield
    except REDIS_DOWN as error:
        outage_log.failed(error)
        raise ChatStoreUnavailable() from error
    outage_log.answered()


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the client for the app's lifetime; a Redis that is down only gets a warning."""
    client = make_redis(app[settings_key])
    app[redis_key] = client
    if client is None:
        yield
        return
    try:
        await asyncio.wait_for(client.ping(), REDIS_CONNECT_TIMEOUT_S * 2)
        log.info("Redis at %s answers", redis_address(client))
    except REDIS_DOWN as error:  # wait_for's TimeoutError is an OSError too
        log.warning(
            "Redis at %s does not answer (%s): new chats get 503 until it does",
            redis_address(client),
            type(error).__name__,
        )
    try:
        yield
    finally:
        await client.aclose()


def setup_redis(app: web.Application) -> None:
    app.cleanup_ctx.append(redis_client)


# The longest the Redis stores' and limits' own tasks may take to stop at close.
CLOSE_WAIT_S = 2.0


async def stop_tasks(tasks: Collection[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait a bounded time: a cancel that lands inside a redis-py
    command can be lost (each loop also stops by a flag), and a close must never hang."""
    for task in list(tasks):
        task.cancel()
    if tasks:
        await asyncio.wait(list(tasks), timeout=CLOSE_WAIT_S)
