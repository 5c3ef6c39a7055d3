"""The attacks of issue 10 on per-client limits, over real sockets: chats held open that never
read, fresh fake keys to reset the per-minute budget, and guessing ACCESS_TOKEN at speed."""

from __future__ import annotations

import asyncio
import secrets

import orjson

from tests.client_limits import BODY, CHAT, HANG, WS, answered, hold_chat, refused
from tests.conftest import USER_KEY, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter
from tests.security.conftest import ACCESS_TOKEN, TEST_REMOTE

OTHER = "203.0.113.9"


async def test_one_address_cannot_take_every_upstream_connection(
    make_peer_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # Issue 10's attack: POST chats that never read, until the upstream pool is taken and
    # other users' chats hang. With the default cap of 16, a pool of 20 keeps room for them.
    client = await make_peer_client(upstream_max_connections=20, first_byte_s=0.05)
    fake_openrouter.script(*[HANG] * 16)
    held = [await hold_chat(client) for _ in range(16)]
    for _ in range(8):
        assert "at once" in (await refused(client))["message"]
    assert len(fake_openrouter.requests) == 16  # the refused chats cost nothing upstream
    await answered(client, **{TEST_REMOTE: OTHER})  # other users' chats are not hurt
    held[0].close()  # one of the held chats ends: its slot comes back
    await fake_openrouter.requests[0].wait_dropped_by_relay()
    for _ in range(50):
        async with client.post(CHAT, data=BODY) as response:
            if response.status == 200:
                assert await response.text() == "Hello"
                break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the ended chat's slot was not given back")
    for response in held[1:]:
        response.close()


async def test_websocket_and_post_chats_count_together(
    make_peer_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_peer_client(max_chats_per_client=2, first_byte_s=0.05)
    fake_openrouter.script(HANG, HANG)
    held = await hold_chat(client)
    async with client.ws_connect(WS) as ws:
        await ws.send_str(orjson.dumps({"id": "a", **chat_body()}).decode())
        for _ in range(100):
            if len(fake_openrouter.requests) == 2:
                break
            await asyncio.sleep(0.02)
        await ws.send_str(orjson.dumps({"id": "b", **chat_body()}).decode())
        frame = orjson.loads((await ws.receive(timeout=3)).data)
        assert (frame["type"], frame["id"], frame["status"]) == ("error", "b", 429)
        await refused(client)
        await ws.send_str(orjson.dumps({"type": "cancel", "id": "a"}).decode())
        frame = orjson.loads((await ws.receive(timeout=3)).data)
        assert (frame["type"], frame["finish_reason"]) == ("done", "cancelled")
        await answered(client)  # the cancelled chat gave its slot back
    held.close()


async def test_one_key_cannot_spread_its_chats_over_addresses(
    make_peer_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_peer_client(max_chats_per_client=2, first_byte_s=0.05)
    await client.put("/api/profile", data=orjson.dumps({"openrouter_api_key": USER_KEY}))
    fake_openrouter.script(HANG, HANG)
    held = [await hold_chat(client, **{TEST_REMOTE: f"198.51.100.{n}"}) for n in (1, 2)]
    await refused(client, **{TEST_REMOTE: "198.51.100.3"})
    await client.delete("/api/profile")  # on the server's key, that address is free
    await answered(client, **{TEST_REMOTE: "198.51.100.3"})
    for response in held:
        response.close()


async def test_a_fresh_fake_key_does_not_buy_new_chats(
    make_peer_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_peer_client(chats_per_minute=3)
    for n in range(5):
        fake_key = f"sk-or-v1-fake-{secrets.token_hex(16)}"
        await client.put("/api/profile", data=orjson.dumps({"openrouter_api_key": fake_key}))
        async with client.post(CHAT, data=BODY) as response:
            assert response.status == (200 if n < 3 else 429)
            await response.read()
    assert len(fake_openrouter.requests) == 3


async def test_guessing_the_access_token_is_slowed_per_address(
    make_peer_client: MakeClient,
) -> None:
    client = await make_peer_client(access_token=ACCESS_TOKEN, login_attempts_per_minute=10)
    statuses = []
    for n in range(40):
        guess = orjson.dumps({"token": f"guess-{n}"})
        async with client.post("/api/login", data=guess) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert "login attempts" in (await response.json())["message"]
    assert statuses == [401] * 10 + [429] * 30  # 10 guesses compared, not 40
    right = orjson.dumps({"token": ACCESS_TOKEN})
    async with client.post("/api/login", data=right) as response:
        assert response.status == 429  # the guessing address waits, even with the token
    async with client.post("/api/login", data=right, headers={TEST_REMOTE: OTHER}) as response:
        assert response.status == 204  # another address logs in at once


async def test_too_many_chats_at_once_says_a_true_retry_after(
    make_peer_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # Issue 20.4: twenty SDK streams took 11 s because a 429 said `Retry-After: 10` where a
    # slot frees as soon as a chat ends. The SDKs wait what it says: it says 1.
    client = await make_peer_client(max_chats_per_client=1, first_byte_s=0.05)
    fake_openrouter.script(HANG)
    held = await hold_chat(client)
    async with client.post(CHAT, data=BODY) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"
    async with client.ws_connect(WS) as ws:
        await ws.send_str(orjson.dumps({"id": "w", **chat_body()}).decode())
        frame = orjson.loads((await ws.receive(timeout=3)).data)
        assert (frame["status"], frame["retry_after"]) == (429, 1)
    held.close()
    await fake_openrouter.requests[0].wait_dropped_by_relay()
    # The held chat's slot is back as soon as it ended (no fixed wait: a busy machine).
    for _ in range(100):
        async with client.post(CHAT, data=BODY) as response:
            if response.status == 200:
                assert await response.text() == "Hello"
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the ended chat's slot was not given back")


async def test_ipv6_clients_are_counted_by_their_64(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter
) -> None:
    # Issue 21.6: behind a router, one host holds a whole /64 and ran 600 detached chats
    # against a cap of 16, an address each. Its /64 is one client.
    client = await make_client(behind_proxy=True, max_chats_per_client=2, first_byte_s=0.05)
    fake_openrouter.script(HANG, HANG, HANG)
    held = [await hold_chat(client, **{"X-Forwarded-For": f"2001:db8:1:2::{n:x}"}) for n in (1, 2)]
    await refused(client, **{"X-Forwarded-For": "2001:db8:1:2:ffff:eeee:dddd:cccc"})
    await refused(client, **{"X-Forwarded-For": "2001:DB8:1:2:0:0:0:3"})
    # Another /64 is another client; an IPv4 client is counted by its own address.
    held.append(await hold_chat(client, **{"X-Forwarded-For": "2001:db8:1:3::1"}))
    await answered(client, **{"X-Forwarded-For": "203.0.113.7"})
    for response in held:
        response.close()
