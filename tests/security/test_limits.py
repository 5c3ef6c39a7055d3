"""Limits that keep one client from hurting others: chats per minute, sockets, upstream pool."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from server.config import ConfigError, Settings
from server.relay.upstream_client import openrouter_key
from server.web import limits
from server.web.limits import MemoryLimitStore
from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply
from tests.security.conftest import TEST_REMOTE
from tests.waiting import wait_until

CHAT = "/api/chat/openrouter"
WS = "/api/chat/ws"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_tracked_clients_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_TRACKED_KEYS", 100)
    clock = Clock()
    store = MemoryLimitStore(clock)
    for n in range(1000):
        clock.now += 0.001
        assert await store.take_rate([f"addr:10.0.{n // 256}.{n % 256}"], 60) is None
    assert len(store.buckets) <= 100


def test_limits_are_read_from_the_environment() -> None:
    env = {"MAX_SOCKETS_PER_CLIENT": "3", "CHATS_PER_MINUTE": "0", "UPSTREAM_MAX_CONNECTIONS": "7"}
    env |= {"MAX_CHATS_PER_CLIENT": "5", "LOGIN_ATTEMPTS_PER_MINUTE": "9"}
    settings = Settings.from_env(env)
    assert (settings.max_sockets_per_client, settings.chats_per_minute) == (3, 0)
    assert settings.upstream_max_connections == 7
    assert (settings.max_chats_per_client, settings.login_attempts_per_minute) == (5, 9)
    defaults = Settings()
    assert (defaults.max_chats_per_client, defaults.chats_per_minute) == (16, 300)
    with pytest.raises(ConfigError, match="CHATS_PER_MINUTE"):
        Settings.from_env({"CHATS_PER_MINUTE": "-1"})


async def test_http_chats_over_the_rate_get_429_with_retry_after(
    make_peer_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_peer_client(chats_per_minute=2)
    body = orjson.dumps(chat_body())
    for _ in range(2):
        async with client.post(CHAT, data=body) as response:
            assert response.status == 200
    async with client.post(CHAT, data=body) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert "per minute" in (await response.json())["message"]
    assert len(fake_openrouter.requests) == 2  # the refused chat cost nothing upstream
    # Another address has its own budget.
    async with client.post(CHAT, data=body, headers={TEST_REMOTE: "203.0.113.9"}) as response:
        assert response.status == 200


async def test_bad_requests_do_not_use_up_the_rate(make_peer_client: MakeClient) -> None:
    client = await make_peer_client(chats_per_minute=1)
    for _ in range(5):
        async with client.post(CHAT, data=b"{}") as response:
            assert response.status == 400
    async with client.post(CHAT, data=orjson.dumps(chat_body())) as response:
        assert response.status == 200


async def test_websocket_chats_over_the_rate_get_an_error_frame_with_retry_after(
    make_peer_client: MakeClient,
) -> None:
    client = await make_peer_client(chats_per_minute=1)
    async with client.ws_connect(WS) as ws:
        await ws.send_str(orjson.dumps({"id": "1", **chat_body()}).decode())
        while (frame := orjson.loads((await ws.receive(timeout=3)).data))["type"] == "delta":
            pass
        assert frame["type"] == "done"
        await ws.send_str(orjson.dumps({"id": "2", **chat_body()}).decode())
        frame = orjson.loads((await ws.receive(timeout=3)).data)
        assert frame["type"] == "error" and frame["id"] == "2" and frame["status"] == 429
        assert isinstance(frame["retry_after"], int) and frame["retry_after"] >= 1
        await ws.send_str("[]")  # the socket still answers
        assert orjson.loads((await ws.receive(timeout=3)).data)["status"] == 400


async def test_sockets_per_address_are_capped_and_given_back(make_peer_client: MakeClient) -> None:
    client = await make_peer_client(max_sockets_per_client=2)
    first = await client.ws_connect(WS)
    second = await client.ws_connect(WS)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(WS)
    assert refused.value.status == 429
    assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) >= 1
    other = await client.ws_connect(WS, headers={TEST_REMOTE: "203.0.113.9"})
    await first.close()
    opened: list[aiohttp.ClientWebSocketResponse] = []

    async def a_slot_is_free() -> bool:  # the server notices the close a moment later
        try:
            opened.append(await client.ws_connect(WS))
        except aiohttp.WSServerHandshakeError:
            return False
        return True

    await wait_until(a_slot_is_free, "the closed socket's slot is given back")
    for ws in (second, *opened, other):
        await ws.close()


async def test_upstream_connections_are_capped_and_chats_queue(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(upstream_max_connections=2, chats_per_minute=0)
    assert client.app is not None
    assert client.app[openrouter_key].session.connector is not None
    assert client.app[openrouter_key].session.connector.limit == 2
    slow = Reply(steps=[COMMENT, 0.3])
    fake_openrouter.script(slow, slow)
    body = orjson.dumps(chat_body("third"))
    posts = [asyncio.create_task(client.post(CHAT, data=body)) for _ in range(3)]
    responses = await asyncio.wait_for(asyncio.gather(*posts), timeout=10)
    first, second, third = fake_openrouter.requests
    # The third waited for a free connection: it reached upstream only once one had ended.
    assert first.ended_at is not None and second.ended_at is not None
    assert third.arrived_at >= min(first.ended_at, second.ended_at)
    assert sorted(r.status for r in responses) == [200, 502, 502]
    for response in responses:
        response.release()
