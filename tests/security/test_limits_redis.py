"""With REDIS_URL the limits hold across processes: two app instances share one redis-server.
Redis going away refuses new chats with a 503 and breaks nothing else, until it is back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from tests.client_limits import (
    BODY,
    CHAT,
    HANG,
    WS,
    answered,
    hold_chat,
    refused,
)
from tests.conftest import USER_KEY, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter
from tests.redis_server import RedisServer


async def test_chats_per_minute_count_across_processes(
    make_peer_client: MakeClient, redis_url: str
) -> None:
    one = await make_peer_client(redis_url=redis_url, chats_per_minute=2)
    two = await make_peer_client(redis_url=redis_url, chats_per_minute=2)
    await answered(one)
    await answered(two)
    assert "per minute" in (await refused(one))["message"]
    await refused(two)


async def test_chats_at_once_count_across_processes(
    make_peer_client: MakeClient, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    settings = {"redis_url": redis_url, "max_chats_per_client": 2, "first_byte_s": 0.05}
    one, two = await make_peer_client(**settings), await make_peer_client(**settings)
    fake_openrouter.script(HANG, HANG)
    held = [await hold_chat(one), await hold_chat(two)]
    await refused(one)
    await refused(two)
    held[0].close()
    await fake_openrouter.requests[0].wait_dropped_by_relay()
    # The slot is given back in Redis as the chat ends, on whichever process ran it.
    for _ in range(50):
        async with two.post(CHAT, data=BODY) as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the ended chat's slot was not given back")
    held[1].close()


async def test_sockets_per_address_count_across_processes(
    make_peer_client: MakeClient, redis_url: str
) -> None:
    one = await make_peer_client(redis_url=redis_url, max_sockets_per_client=2)
    two = await make_peer_client(redis_url=redis_url, max_sockets_per_client=2)
    first, second = await one.ws_connect(WS), await two.ws_connect(WS)
    with pytest.raises(aiohttp.WSServerHandshakeError) as too_many:
        await one.ws_connect(WS)
    assert too_many.value.status == 429
    await first.close()
    await second.close()


async def test_redis_away_refuses_new_chats_with_503_and_nothing_else(
    make_peer_client: MakeClient,
    make_redis_server: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_redis_server()
    client = await make_peer_client(redis_url=server.url)
    await answered(client)
    server.stop()
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            async with client.post(CHAT, data=BODY) as response:
                assert response.status == 503
                assert await response.json() == {"message": "Chat store unavailable"}
    # An outage under load is a line now and then, not one per refused chat.
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) <= 1
    for path in ("/healthz", "/api/profile"):
        async with client.get(path) as response:
            assert response.status == 200
    async with client.ws_connect(WS) as ws:  # the socket still opens
        await ws.send_str(orjson.dumps({"id": "x", **chat_body()}).decode())
        frame = orjson.loads((await ws.receive(timeout=10)).data)
        assert (frame["type"], frame["id"], frame["status"]) == ("error", "x", 503)
        assert frame["message"] == "Chat store unavailable"
        server.start()  # back, empty, as after a failover: no restart of the app needed
        await ws.send_str(orjson.dumps({"id": "y", **chat_body()}).decode())
        frame = orjson.loads((await ws.receive(timeout=10)).data)
        assert (frame["type"], frame["id"], frame["content"]) == ("delta", "y", "Hello")
    await answered(client)


async def test_no_user_key_reaches_redis(make_peer_client: MakeClient, redis_url: str) -> None:
    client = await make_peer_client(redis_url=redis_url)
    await client.put("/api/profile", data=orjson.dumps({"openrouter_api_key": USER_KEY}))
    await answered(client)
    redis = Redis.from_url(redis_url)
    try:
        names = [name async for name in redis.scan_iter()]
        assert any(b":key:" in name for name in names)  # the key is counted, as a hash
        for name in names:
            stored = [name]
            kind = await redis.type(name)
            if kind == b"hash":
                stored += [*(await redis.hgetall(name)).values()]
            elif kind == b"zset":
                stored += await redis.zrange(name, 0, -1)
            elif kind == b"stream":  # a chat's log (server/store/redis_store.py)
                entries: Any = await redis.xrange(name)
                stored += [value for _, fields in entries for value in fields.values()]
            else:
                stored.append(await redis.get(name))
            assert not any(USER_KEY[-12:].encode() in value for value in stored)
    finally:
        await redis.aclose()
