"""A chat's events, and the chat store's one interface: the logs of those events, written
by runs and read by listeners.

The core yields the events, a run logs them and the transports write them. Two stores keep
the logs: MemoryStore (server/store/memory.py, one process) and RedisStore
(server/store/redis_store.py, shared by every process), picked at start-up (server/relay/runs.py).
Nothing else knows which one is in use; tests/store/ runs one suite against both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from aiohttp import web

from server.errors import ChatError


@dataclass(frozen=True, slots=True)
class Delta:
    content: str
    kind: ClassVar[Literal["delta"]] = "delta"


@dataclass(frozen=True, slots=True)
class Reasoning:
    content: str
    kind: ClassVar[Literal["reasoning"]] = "reasoning"


@dataclass(frozen=True, slots=True)
class Raw:
    """A JSON document a run logs whole for a reader that knows it: a /v1/responses run's
    head, and upstream's chunks that say more than text (server/relay/responses.py). The
    chat transports never read such a log."""

    content: str
    kind: ClassVar[Literal["raw"]] = "raw"


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str | None
    usage: dict[str, Any] | None
    kind: ClassVar[Literal["done"]] = "done"


@dataclass(frozen=True, slots=True)
class Failed:
    """A chat's final error, as its log keeps it: what ChatError.to_dict() says."""

    status: int
    message: str
    retry_after: int | None = None
    # The error's string code, for /v1's OpenAI-shaped errors (upstream's own, such as
    # `context_length_exceeded`, else chatrelay's); not part of the frames, nor of equality.
    code: str | None = field(default=None, compare=False)
    kind: ClassVar[Literal["error"]] = "error"

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


ChatEvent = Delta | Reasoning | Raw | Done


@dataclass(frozen=True, slots=True)
class Chunks:
    """Upstream's own `data:` payloads of one read, for /v1: neither `[DONE]` nor an error
    chunk, which the core reports as Done and ChatError. Not a ChatEvent: only
    `stream_chat(..., relay_chunks=True)` yields it, instead of Delta and Reasoning."""

    payloads: list[bytes]
    # Whether one of them carried usage: the client may not have asked for it.
    has_usage: bool
    # The read's text, as the core decoded it (merged, surrogate pairs made whole).
    texts: tuple[Delta | Reasoning, ...] = ()
    kind: ClassVar[Literal["chunks"]] = "chunks"


# What a chat's log holds: its events, the last of them one Done or one Failed.
LogEvent = Delta | Reasoning | Raw | Done | Failed
Final = Done | Failed
Text = Delta | Reasoning


def merged(first_seq: int, events: Sequence[LogEvent]) -> list[tuple[int, LogEvent]]:
    """Each run of text of one kind as one event with the seq of its last piece: a client
    that saw seq N has every text up to N."""
    if len(events) == 1:
        return [(first_seq, events[0])]
    out: list[tuple[int, LogEvent]] = []
    parts: list[str] = []
    for seq, event in enumerate(events, first_seq):
        if isinstance(event, Delta | Reasoning):
            parts.append(event.content)
            following = events[seq - first_seq + 1] if seq - first_seq + 1 < len(events) else None
            if type(following) is not type(event):
                out.append((seq, type(event)("".join(parts))))
                parts = []
        else:
            out.append((seq, event))
    return out


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

    async def append(self, events: Sequence[LogEvent]) -> None:
        """Add one upstream read's events; a Done or Failed last ends the log.

        May wait while a listener of this process is far behind (backpressure)."""


class ChatStore(Protocol):
    """Where chat logs live. A key is a chat's owner and id (server/relay/runs.py)."""

    # Whether another process can serve this one's listeners (SIGTERM then closes sockets
    # at once with 1012: the page reconnects elsewhere and follows its chats from there).
    shared: bool

    async def create(self, key: str, run: RunControl) -> ChatLog:
        """A new, empty log for a starting chat; one that ended under the key is replaced.

        ChatIdInUse when a chat with the key is still running; ChatStoreUnavailable (503)
        when the store cannot take it."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether a chat is kept under the key, running (from its start) or ended."""
        ...

    async def not_found(self, chat_id: str) -> ChatError:
        """What to answer for a chat kept under none of its keys: ChatNotFound (404), or
        ChatStoreUnavailable (503, to retry) while the store may be getting it back."""
        ...

    def read(self, key: str, after: int, live: Live | None = None) -> AsyncIterator[Slice]:
        """The chat's events with seq > `after`, in bounded slices, then live until its
        final event; ChatNotFound when it is not kept (or no longer from `after`). A read
        always ends with the final event: asked from it or past it, with it alone.

        With `live`, a run of this process may hand its reads to `live.write` instead,
        while the listener waits caught up (a failed write is raised by the iterator)."""
        ...

    async def cancel(self, key: str) -> bool:
        """Stop the running chat under the key, wherever it runs; False when none is."""
        ...

    async def forget(self, key: str) -> None:
        """Drop the log of a chat that ended (DELETE /v1/responses/{id}), on every process."""
        ...

    async def close(self) -> None:
        """Let go of connections; logs of this process's runs end with them."""
        ...


chat_store_key = web.AppKey("chat_store", ChatStore)
