"""The chat store's one interface: chat logs written by runs and read by listeners.

Two implementations: MemoryStore (server/memory_store.py, one process) and RedisStore
(server/redis_store.py, shared by every process). Nothing outside them knows which one
is in use; tests/store/ runs one suite against both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Protocol

from aiohttp import web
from redis.asyncio import Redis

from .config import Settings
from .events import LogEvent

# A replay never goes out as one message: a listener gets at most this much per read.
MAX_READ_CHARS = 64 * 1024
MAX_READ_EVENTS = 1024

# What a read yields: the seq of its first event, and the events (seq +1 each).
Slice = tuple[int, list[LogEvent]]


class RunControl(Protocol):
    """What the store tells the run it holds a log for, from whichever process."""

    def cancel(self) -> None:
        """Someone stopped the chat: a cancel frame or DELETE, here or on another process."""

    def abandon(self) -> None:
        """Nobody listened for RESUME_WINDOW_S: end it as if cancelled."""


class Live(Protocol):
    """A listener that can take a read's events from the run's own task, while it waits
    caught up: the per-token path, with no wake-up of the listener's task per token."""

    def ready(self) -> bool:
        """Whether a write now would go out at once (the client is keeping up)."""
        ...

    def write(self, first_seq: int, events: Sequence[LogEvent]) -> Awaitable[None]:
        """Write the events; it does not wait, as `ready()` said."""
        ...


class ChatLog(Protocol):
    """The writing end of one chat's log, held by its run."""

    async def append(self, events: list[LogEvent]) -> None:
        """Add one upstream read's events; a Done or Failed last ends the log.

        May wait while a listener of this process is far behind (backpressure)."""


class ChatStore(Protocol):
    """Where chat logs live. A key is a chat's owner and id (server/runs.py)."""

    # Whether another process can serve this one's listeners (SIGTERM then closes sockets
    # at once with 1012: the page reconnects elsewhere and follows its chats from there).
    shared: bool

    async def create(self, key: str, run: RunControl) -> ChatLog:
        """A new, empty log for a starting chat; one that ended under the key is replaced.

        ChatIdInUse when a chat with the key is still running; ChatStoreUnavailable (503)
        when the store cannot take it."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether a chat is kept under the key, running or ended."""
        ...

    def read(self, key: str, after: int, live: Live | None = None) -> AsyncIterator[Slice]:
        """The chat's events with seq > `after`, in bounded slices, then live until its
        final event; ChatNotFound when it is not kept (or no longer from `after`).

        With `live`, a run of this process may hand its reads to `live.write` instead,
        while the listener waits caught up (a failed write is raised by the iterator)."""
        ...

    async def cancel(self, key: str) -> bool:
        """Stop the running chat under the key, wherever it runs; False when none is."""
        ...

    async def close(self) -> None:
        """Let go of connections; logs of this process's runs end with them."""
        ...


chat_store_key = web.AppKey("chat_store", ChatStore)


def open_store(settings: Settings, redis: Redis | None) -> ChatStore:
    """Redis when REDIS_URL is set, else this process's memory."""
    # Imported here: both implementations import this module.
    from .memory_store import MemoryStore  # noqa: PLC0415
    from .redis_store import RedisStore  # noqa: PLC0415

    if redis is None:
        return MemoryStore(settings.resume_window_s, settings.chat_retention_s)
    return RedisStore(redis, settings.resume_window_s, settings.chat_retention_s)
