"""Limits that keep one client from hurting others: sockets per address, chats per minute."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from aiohttp import web

from .config import Settings, settings_key
from .errors import TooManyChats
from .profile import Profile

# Past this many tracked clients, idle entries are dropped: rotating addresses cost no memory.
MAX_TRACKED_CLIENTS = 10_000
SOCKET_RETRY_AFTER_S = 10


class ChatRate:
    """A token bucket per client: `per_minute` chats at once, refilled evenly over a minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str) -> int | None:
        """Spend one chat of `client`'s budget; None when allowed, else seconds to wait."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        tokens = self._tokens(client, now)
        if tokens < 1:
            return max(1, math.ceil((1 - tokens) * 60 / self.per_minute))
        if client not in self.buckets and len(self.buckets) >= MAX_TRACKED_CLIENTS:
            self._forget_idle(now)
        self.buckets[client] = (tokens - 1, now)
        return None

    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self.buckets.get(client, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60)

    def _forget_idle(self, now: float) -> None:
        for client in [c for c in self.buckets if self._tokens(c, now) >= self.per_minute]:
            del self.buckets[client]
        if len(self.buckets) >= MAX_TRACKED_CLIENTS:
            # Forgetting the first-seen half only makes the limit more lenient for them.
            for client in list(self.buckets)[: len(self.buckets) // 2]:
                del self.buckets[client]


class SocketCount:
    """Open WebSockets per client address."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self.open: dict[str, int] = {}

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        """Count a socket for `client` while inside; TooManyChats (429) when over the cap."""
        count = self.open.get(client, 0)
        if 0 < self.per_client <= count:
            raise TooManyChats(
                f"At most {self.per_client} WebSocket connections per client address",
                retry_after=SOCKET_RETRY_AFTER_S,
            )
        self.open[client] = count + 1
        try:
            yield
        finally:
            left = self.open.get(client, 1) - 1
            if left > 0:
                self.open[client] = left
            else:
                self.open.pop(client, None)


class Limits:
    def __init__(self, settings: Settings) -> None:
        self.chat_rate = ChatRate(settings.chats_per_minute)
        self.sockets = SocketCount(settings.max_sockets_per_client)


limits_key = web.AppKey("limits", Limits)


def client_address(request: web.Request) -> str:
    # request.remote is the peer, or the forwarded client once a proxy middleware cloned it.
    return request.remote or "unknown"


def rate_client(request: web.Request, profile: Profile) -> str:
    """Chats on a user's own key count per key (its sessions); on the server's, per address."""
    if profile.source == "session" and profile.api_key:
        return "key:" + hashlib.sha256(profile.api_key.encode()).hexdigest()[:32]
    return "addr:" + client_address(request)


def check_chat_rate(request: web.Request, profile: Profile) -> None:
    """Count one chat start; TooManyChats (429, retry_after) past CHATS_PER_MINUTE."""
    retry_after = request.app[limits_key].chat_rate.take(rate_client(request, profile))
    if retry_after is not None:
        per_minute = request.app[settings_key].chats_per_minute
        raise TooManyChats(
            f"At most {per_minute} chats per minute may be started; try again in {retry_after} s",
            retry_after=retry_after,
        )


def socket_slot(request: web.Request) -> AbstractContextManager[None]:
    """Hold one of the client address's WebSocket slots; TooManyChats (429) when none is free."""
    return request.app[limits_key].sockets.hold(client_address(request))


def setup_limits(app: web.Application) -> None:
    app[limits_key] = Limits(app[settings_key])
