"""The chat store suite runs against every implementation: `make_store` makes one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from server.config import Settings
from server.store.events import ChatStore
from server.store.memory import MemoryStore
from server.store.redis_conn import make_redis
from server.store.redis_store import RedisStore

MakeStore = Callable[..., Awaitable[ChatStore]]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Stores of one kind; with Redis each is its own process's store on one redis-server."""
    made: list[ChatStore] = []
    clients: list[Redis] = []
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    async def make(resume_window_s: float = 300.0, retention_s: float = 600.0) -> ChatStore:
        store: ChatStore
        if redis_url is None:
            store = MemoryStore(resume_window_s, retention_s)
        else:
            client = make_redis(Settings(redis_url=redis_url))
            assert client is not None
            clients.append(client)
            store = RedisStore(client, resume_window_s, retention_s)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()
    for client in clients:
        await client.aclose()
