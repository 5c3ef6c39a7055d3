"""The chat store suite runs against every implementation: `store_factory` makes one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from server.memory_store import MemoryStore
from server.store import ChatStore

MakeStore = Callable[..., Awaitable[ChatStore]]


@pytest.fixture(params=["memory"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    made: list[ChatStore] = []

    async def make(resume_window_s: float = 300.0, retention_s: float = 600.0) -> ChatStore:
        store: ChatStore = MemoryStore(resume_window_s, retention_s)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()
