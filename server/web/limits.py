"""Limits that keep one client from hurting others: chats at once and per minute, sockets, logins.

A chat counts against its client address and, when it runs on the user's own key, against
that key too: a fresh fake key buys no new chats, and one key cannot spread its chats over
many addresses. Counts live in Redis with REDIS_URL (every process shares them,
`server/store/redis_limits.py`), else in this process's memory (MemoryLimitStore, here).

Two kinds of count, both all-or-nothing over several keys (a chat counts against its
address *and* its user key at once): a rate (token bucket, `per_minute` at once, refilled
evenly over a minute) and slots (things held at once, each a `Lease` given back when done).
It stays whole at ~300 lines: the counting interface and its in-memory store go together.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from aiohttp import web

from server.config import Settings, settings_key
from server.errors import ChatStoreUnavailable, TooManyChats
from server.store.redis_conn import redis_key
from server.store.redis_limits import RedisLimitStore
from server.web.profile import Profile

# A chat's slot frees the moment one of the client's chats ends, which is often within a
# second: the SDKs wait exactly what Retry-After says (issue 20.4: 10 s cost 11 s for 20 streams).
CHAT_SLOT_RETRY_AFTER_S = 1
# A WebSocket is held for as long as its page is open: a slot rarely frees at once.
SOCKET_SLOT_RETRY_AFTER_S = 10
# An IPv6 client is its /64: what one host (or one customer of a provider) is given.
IPV6_CLIENT_PREFIX = 64
# Past this many tracked keys, idle buckets are dropped: rotating addresses cost no memory.
MAX_TRACKED_KEYS = 10_000


class Lease(Protocol):
    """Slots held under some keys; `release()` gives them back (again: nothing happens)."""

    async def release(self) -> None: ...


class LimitStore(Protocol):
    async def take_rate(
        self, keys: Sequence[str], per_minute: int, *, spend: bool = True
    ) -> int | None:
        """Spend one from each key's bucket: None when every key had one, else the seconds
        until all of them have (and nothing is spent). `spend=False` only asks."""
        ...

    async def take_slots(self, keys: Sequence[str], cap: int) -> Lease | None:
        """Hold one slot under each key while under `cap` for all of them, else None."""
        ...

    async def aclose(self) -> None:
        """Give back every lease still held (a process that ends holds nothing)."""
        ...


def seconds_until_one(tokens: float, per_minute: int) -> int:
    return max(1, math.ceil((1 - tokens) * 60 / per_minute))


class MemoryLease:
    def __init__(self, store: MemoryLimitStore, keys: Sequence[str]) -> None:
        self.store, self.keys = store, tuple(keys)
        self.held = True

    async def release(self) -> None:
        if self.held:
            self.held = False
            self.store.give_back(self.keys)


class MemoryLimitStore:
    """Counts of this process only: the default without REDIS_URL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.slots: dict[str, int] = {}

    async def take_rate(
        self, keys: Sequence[str], per_minute: int, *, spend: bool = True
    ) -> int | None:
        now = self.clock()
        tokens = [self._tokens(key, now, per_minute) for key in keys]
        short = [t for t in tokens if t < 1]
        if short:
            return seconds_until_one(min(short), per_minute)
        if not spend:
            return None
        if len(self.buckets) + len(keys) > MAX_TRACKED_KEYS:
            self._forget_idle(now, per_minute)
        for key, left in zip(keys, tokens, strict=True):
            self.buckets[key] = (left - 1, now)
        return None

    def _tokens(self, key: str, now: float, per_minute: int) -> float:
        tokens, at = self.buckets.get(key, (float(per_minute), now))
        return min(float(per_minute), tokens + (now - at) * per_minute / 60)

    def _forget_idle(self, now: float, per_minute: int) -> None:
        for key in [k for k in self.buckets if self._tokens(k, now, per_minute) >= per_minute]:
            del self.buckets[key]
        if len(self.buckets) >= MAX_TRACKED_KEYS:
            # Forgetting the first-seen half only makes the limit more lenient for them.
            for key in list(self.buckets)[: len(self.buckets) // 2]:
                del self.buckets[key]

    async def take_slots(self, keys: Sequence[str], cap: int) -> Lease | None:
        if any(self.slots.get(key, 0) >= cap for key in keys):
            return None
        for key in keys:
            self.slots[key] = self.slots.get(key, 0) + 1
        return MemoryLease(self, keys)

    def give_back(self, keys: Sequence[str]) -> None:
        for key in keys:
            left = self.slots.get(key, 1) - 1
            if left > 0:
                self.slots[key] = left
            else:
                self.slots.pop(key, None)

    async def aclose(self) -> None:
        self.slots.clear()


class ChatLease:
    """A running chat's slot under its address and key: held for the chat's whole life,
    detached or not, and given back once by `release()` (or leaving `async with`)."""

    def __init__(self, lease: Lease | None) -> None:
        self._lease = lease

    async def release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()

    async def __aenter__(self) -> ChatLease:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.release()


@dataclass(frozen=True, slots=True)
class Limits:
    settings: Settings
    store: LimitStore
    # Logins and, while Redis is away, sockets are counted here: neither may depend on Redis.
    local: MemoryLimitStore


limits_key = web.AppKey("limits", Limits)


def client_address(request: web.Request) -> str:
    """Who the per-client limits count: the address, an IPv6 one by its /64.

    request.remote is the peer, or the forwarded client once a proxy middleware cloned it.
    One host is given a whole /64 and may pick any address in it (issue 21.6: 600 chats
    against a cap of 16), so its /64 is one client, as an IPv4 address is.
    """
    remote = request.remote or "unknown"
    if ":" not in remote:
        return remote
    try:
        address = ipaddress.IPv6Address(remote.partition("%")[0])
    except ValueError:
        return remote
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))


def chat_clients(request: web.Request, profile: Profile) -> list[str]:
    """Who a chat counts against: its address, the user's own key (hashed) if it uses one,
    and the signed-in account: its chats from every device count together."""
    clients = ["addr:" + client_address(request)]
    if profile.source in ("account", "session", "bearer") and profile.api_key:
        clients.append("key:" + hashlib.sha256(profile.api_key.encode()).hexdigest()[:32])
    if profile.account_id is not None:
        clients.append("account:" + profile.account_id)
    return clients


async def admit_chat(request: web.Request, profile: Profile) -> ChatLease:
    """Let one chat start: a slot of MAX_CHATS_PER_CLIENT, then one of CHATS_PER_MINUTE.

    TooManyChats (429, retry_after) past either; ChatStoreUnavailable (503) when Redis is
    away. A chat refused for running too many spends none of the per-minute budget.
    """
    limits = request.app[limits_key]
    settings = limits.settings
    clients = chat_clients(request, profile)
    lease: Lease | None = None
    if settings.max_chats_per_client > 0:
        lease = await limits.store.take_slots(
            ["chats:" + c for c in clients], settings.max_chats_per_client
        )
        if lease is None:
            raise TooManyChats(
                f"At most {settings.max_chats_per_client} chats may run at once per client",
                retry_after=CHAT_SLOT_RETRY_AFTER_S,
            )
    chat = ChatLease(lease)
    try:
        if settings.chats_per_minute > 0:
            wait = await limits.store.take_rate(
                ["rate:" + c for c in clients], settings.chats_per_minute
            )
            if wait is not None:
                raise TooManyChats(
                    f"At most {settings.chats_per_minute} chats per minute may be started; "
                    f"try again in {wait} s",
                    retry_after=wait,
                )
    except BaseException:
        await chat.release()
        raise
    return chat


async def take_socket_slot(request: web.Request) -> Lease | None:
    """One of the address's MAX_SOCKETS_PER_CLIENT WebSocket slots, to release when the
    socket closes (None: no cap). A lease, not a context manager: the socket holds it for
    its whole life, and a suspended generator is memory every idle socket would carry.

    TooManyChats (429) when none is free. Redis being away must not take the page's
    socket (resumes and errors travel on it) down with it: the count falls back to this
    process's own.
    """
    limits = request.app[limits_key]
    cap = limits.settings.max_sockets_per_client
    if cap <= 0:
        return None
    keys = ("sockets:addr:" + client_address(request),)
    try:
        lease = await limits.store.take_slots(keys, cap)
    except ChatStoreUnavailable:
        lease = await limits.local.take_slots(keys, cap)
    if lease is None:
        raise TooManyChats(
            f"At most {cap} WebSockets and chat listeners at once per client address",
            retry_after=SOCKET_SLOT_RETRY_AFTER_S,
        )
    return lease


# SPEC: 10 failed sign-ins a minute for one email or one address, then 429.
SIGN_IN_FAILURES_PER_MINUTE = 10


async def sign_in_wait(keys: list[str], request: web.Request, *, failed: bool) -> int | None:
    """Seconds to wait before signing in again under `keys` (None: go ahead); `failed`
    counts one failure. Shared by every process through Redis, else this one's."""
    limits = request.app[limits_key]
    keys = ["signin:" + key for key in keys]
    try:
        return await limits.store.take_rate(keys, SIGN_IN_FAILURES_PER_MINUTE, spend=failed)
    except ChatStoreUnavailable:
        return await limits.local.take_rate(keys, SIGN_IN_FAILURES_PER_MINUTE, spend=failed)


async def check_login_rate(request: web.Request) -> None:
    """Count one login attempt of the address: guessing ACCESS_TOKEN is slowed to a crawl."""
    limits = request.app[limits_key]
    per_minute = limits.settings.login_attempts_per_minute
    if per_minute <= 0:
        return
    wait = await limits.local.take_rate(["login:" + client_address(request)], per_minute)
    if wait is not None:
        raise TooManyChats(f"Too many login attempts; try again in {wait} s", retry_after=wait)


async def limits_store(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the Redis client's): the counts for the app's lifetime."""
    redis = app[redis_key]
    store: LimitStore = MemoryLimitStore() if redis is None else RedisLimitStore(redis)
    local = store if isinstance(store, MemoryLimitStore) else MemoryLimitStore()
    app[limits_key] = Limits(app[settings_key], store, local)
    try:
        yield
    finally:
        await store.aclose()


def setup_limits(app: web.Application) -> None:
    app.cleanup_ctx.append(limits_store)
