"""What the chat-store tests share: a run the store can tell things, and reading a log whole."""

from __future__ import annotations

import asyncio

from server.store.events import ChatStore, LogEvent


class FakeRun:
    """What a store tells a run: cancelled, or abandoned by its listeners."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.abandoned = asyncio.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def abandon(self) -> None:
        self.abandoned.set()


async def read_all(store: ChatStore, key: str, after: int = 0) -> list[tuple[int, LogEvent]]:
    out = []
    async for first_seq, events in store.read(key, after):
        out += list(enumerate(events, first_seq))
    return out
