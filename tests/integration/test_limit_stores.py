"""One suite for both limit stores (memory, Redis), then what only Redis promises: sharing
counts between processes and leaking nothing when one of them crashes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from server.errors import ChatStoreUnavailable
from server.store.redis_limits import LIMIT_KEY_PREFIX, RedisLimitStore
from server.web.limits import LimitStore, MemoryLimitStore
from tests.redis_server import RedisServer


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[LimitStore]:
    if request.param == "memory":
        memory = MemoryLimitStore()
        yield memory
        await memory.aclose()
        return
    client = Redis.from_url(redis_url)
    shared = RedisLimitStore(client)
    yield shared
    await shared.aclose()
    await client.aclose()


async def test_a_rate_allows_per_minute_then_says_when(store: LimitStore) -> None:
    assert await store.take_rate(["a"], 2) is None
    assert await store.take_rate(["a"], 2) is None
    assert await store.take_rate(["a"], 2) in (29, 30)  # one chat comes back every 30 s
    assert await store.take_rate(["b"], 2) is None  # another key has its own budget


async def test_a_rate_refills_evenly(store: LimitStore) -> None:
    for _ in range(60):
        assert await store.take_rate(["a"], 60) is None
    wait = await store.take_rate(["a"], 60)
    assert wait == 1
    await asyncio.sleep(1.05)
    assert await store.take_rate(["a"], 60) is None
    assert await store.take_rate(["a"], 60) == 1


async def test_a_rate_over_several_keys_spends_all_or_nothing(store: LimitStore) -> None:
    assert await store.take_rate(["addr:1", "key:k"], 1) is None
    # The key is spent: from another address it is refused, and that address spends nothing.
    assert await store.take_rate(["addr:2", "key:k"], 1) is not None
    assert await store.take_rate(["addr:2"], 1) is None


async def test_slots_are_capped_and_given_back_once(store: LimitStore) -> None:
    first = await store.take_slots(["x"], 2)
    second = await store.take_slots(["x"], 2)
    assert first is not None and second is not None
    assert await store.take_slots(["x"], 2) is None
    await first.release()
    await first.release()  # a second release gives back nothing more
    third = await store.take_slots(["x"], 2)
    assert third is not None
    assert await store.take_slots(["x"], 2) is None
    assert await store.take_slots(["y"], 2) is not None  # another key has its own slots


async def test_slots_over_several_keys_are_all_or_nothing(store: LimitStore) -> None:
    assert await store.take_slots(["addr:1", "key:k"], 1) is not None
    assert await store.take_slots(["addr:2", "key:k"], 1) is None
    assert await store.take_slots(["addr:2"], 1) is not None  # the refusal took nothing


async def test_two_processes_share_one_count(redis: Redis) -> None:
    one, two = RedisLimitStore(redis), RedisLimitStore(redis)
    try:
        assert await one.take_rate(["a"], 1) is None
        assert await two.take_rate(["a"], 1) is not None
        lease = await one.take_slots(["x"], 1)
        assert lease is not None
        assert await two.take_slots(["x"], 1) is None
        await lease.release()
        assert await two.take_slots(["x"], 1) is not None
    finally:
        await one.aclose()
        await two.aclose()


async def test_every_key_expires(redis: Redis) -> None:
    store = RedisLimitStore(redis, lease_ttl_s=5)
    try:
        await store.take_rate(["a"], 10)
        assert await store.take_slots(["x"], 1) is not None
        assert 0 < await redis.pttl(LIMIT_KEY_PREFIX + "a") <= 60_000
        assert 0 < await redis.pttl(LIMIT_KEY_PREFIX + "x") <= 5_000
    finally:
        await store.aclose()


async def test_a_crashed_process_leaks_no_slot(redis: Redis) -> None:
    crashed = RedisLimitStore(redis, lease_ttl_s=0.5)
    assert await crashed.take_slots(["x"], 1) is not None
    crashed._renewer.cancel()  # the process dies: nobody renews or gives back its slot
    survivor = RedisLimitStore(redis)
    try:
        assert await survivor.take_slots(["x"], 1) is None
        for _ in range(50):
            await asyncio.sleep(0.1)
            if await survivor.take_slots(["x"], 1) is not None:
                break
        else:
            pytest.fail("the crashed process's slot never came back")
    finally:
        await survivor.aclose()


async def test_a_live_holder_keeps_its_slot_past_the_ttl(redis: Redis) -> None:
    holder, other = RedisLimitStore(redis, lease_ttl_s=0.3), RedisLimitStore(redis)
    try:
        assert await holder.take_slots(["x"], 1) is not None
        await asyncio.sleep(1.0)  # more than three TTLs: only renewal keeps it
        assert await other.take_slots(["x"], 1) is None
        await holder.aclose()  # a process that ends cleanly gives its slots back
        assert await other.take_slots(["x"], 1) is not None
    finally:
        await holder.aclose()
        await other.aclose()


async def test_redis_away_is_a_503_and_back_is_business_as_usual(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    server = make_redis_server()
    redis = Redis.from_url(server.url, socket_connect_timeout=1)
    store = RedisLimitStore(redis)
    try:
        lease = await store.take_slots(["x"], 1)
        assert lease is not None
        server.stop()
        with pytest.raises(ChatStoreUnavailable):
            await store.take_rate(["a"], 10)
        with pytest.raises(ChatStoreUnavailable):
            await store.take_slots(["y"], 1)
        await lease.release()  # cannot reach Redis: logged, not raised
        server.start()  # an empty Redis, as after a failover
        assert await store.take_rate(["a"], 10) is None
        assert await store.take_slots(["x"], 1) is not None
    finally:
        await store.aclose()
        await redis.aclose()
