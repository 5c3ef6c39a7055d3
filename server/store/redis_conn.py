"""The app's one Redis client (REDIS_URL), what Redis being down means to a user (a 503),
and the limits counted on it (RedisLimitStore), so that every process shares them.

The client connects lazily and reconnects by itself, so Redis being down at start-up or
going away later never stops the process: each command that cannot reach it raises, and
`store_errors()` turns that into 503 `Chat store unavailable` for the one request.

Each limit is one atomic Lua script over its keys, timed by Redis' own clock, and every key
expires: a bucket once it would be full again, a slot unless its holder keeps renewing it.
A process that crashes stops renewing, so its slots come back within `lease_ttl_s`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Sequence
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
# call at a time and its listeners share one blocking read (server/store/redis_log.py), so only
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


# The limits in Redis (server/web/limits.py says what each counts).
LIMIT_KEY_PREFIX = "chatrelay:limit:"
LEASE_TTL_S = 30.0

# KEYS: buckets; ARGV: per_minute, spend (0: only say whether there is one, sign-in's
# check before it counts a failure). Tokens are kept in thousandths, so they stay integers.
TAKE_RATE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local full = tonumber(ARGV[1]) * 1000
local per_ms = full / 60000
local left = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(saved[1]) or full
  local at = tonumber(saved[2]) or now
  tokens = math.min(full, tokens + math.max(0, now - at) * per_ms)
  left[i] = tokens
  if tokens < 1000 then wait = math.max(wait, math.ceil((1000 - tokens) / per_ms / 1000)) end
end
if wait > 0 or ARGV[2] == '0' then return wait end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'tokens', math.floor(left[i] - 1000), 'at', now)
  redis.call('PEXPIRE', key, 60000)
end
return 0
"""

# KEYS: slot sets (member -> expiry in ms); ARGV: member, cap, ttl in ms.
TAKE_SLOTS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2]) then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""

# KEYS: slot sets; ARGV: member, ttl in ms. Also puts back a slot that expired while Redis
# was away: the chat or socket is still there, so it still counts.
RENEW_SLOTS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2]))
end
return 1
"""

# KEYS: slot sets; ARGV: member. One round trip for the two keys of a chat.
RELEASE_SLOTS = """
for _, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[1]) end
return 1
"""


class RedisLease:
    def __init__(self, store: RedisLimitStore, keys: Sequence[str]) -> None:
        self.store, self.keys = store, tuple(keys)
        self.member = secrets.token_hex(12)

    async def release(self) -> None:
        if self.store.leases.pop(self.member, None) is None:
            return
        try:
            await self.store.release_slots(keys=list(self.keys), args=[self.member])
        except REDIS_DOWN as error:
            # Not renewed any more, the slot expires by itself within the lease's TTL.
            outage_log.failed(error)


class RedisLimitStore:
    def __init__(self, redis: Redis, lease_ttl_s: float = LEASE_TTL_S) -> None:
        self.redis = redis
        self.ttl_ms = int(lease_ttl_s * 1000)
        self.leases: dict[str, RedisLease] = {}
        self._take_rate = redis.register_script(TAKE_RATE)
        self._take_slots = redis.register_script(TAKE_SLOTS)
        self._renew_slots = redis.register_script(RENEW_SLOTS)
        self.release_slots = redis.register_script(RELEASE_SLOTS)
        self._renewer = asyncio.create_task(self._renew_forever(lease_ttl_s / 3))

    async def take_rate(
        self, keys: Sequence[str], per_minute: int, *, spend: bool = True
    ) -> int | None:
        with store_errors():
            wait = await self._take_rate(
                keys=[LIMIT_KEY_PREFIX + k for k in keys], args=[per_minute, int(spend)]
            )
        return int(wait) or None

    async def take_slots(self, keys: Sequence[str], cap: int) -> RedisLease | None:
        lease = RedisLease(self, [LIMIT_KEY_PREFIX + k for k in keys])
        with store_errors():
            taken = await self._take_slots(
                keys=list(lease.keys), args=[lease.member, cap, self.ttl_ms]
            )
        if not taken:
            return None
        self.leases[lease.member] = lease
        return lease

    async def _renew_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.renew()
            except REDIS_DOWN as error:
                outage_log.failed(error)

    async def renew(self) -> None:
        leases = list(self.leases.values())
        if not leases:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                args: list[Any] = [lease.member, self.ttl_ms]
                await self._renew_slots(keys=list(lease.keys), args=args, client=pipe)
            await pipe.execute()

    async def aclose(self) -> None:
        await stop_tasks([self._renewer])
        for lease in list(self.leases.values()):
            await lease.release()
