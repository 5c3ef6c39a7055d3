"""SPEC "History and sync" over HTTP and the WebSocket, on SQLite and PostgreSQL: every
route's shape and status, two devices of one account (two cookie jars), live `sync` frames,
and chats that write their answers into the history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from server.users.db import database_key
from server.users.history_tables import conversations, history_counters, messages
from tests.conftest import Serve, chat_body
from tests.fake_openrouter import FakeOpenRouter, sse_reply
from tests.history.devices import (
    CONVERSATION_KEYS,
    MESSAGE_KEYS,
    PASSWORD,
    Client,
    chat_frames,
    chat_with,
    device,
    json_of,
    next_sync,
    pull,
)
from tests.postgres_server import PostgresServer
from tests.waiting import wait_until


@pytest.fixture
async def server(serve: Serve, database_url: str) -> TestServer:
    return await serve(signup="open", database_url=database_url)


@pytest.fixture
async def laptop(server: TestServer) -> AsyncIterator[Client]:
    client = await device(server, new=True)
    yield client
    await client.close()


@pytest.fixture
async def phone(server: TestServer, laptop: Client) -> AsyncIterator[Client]:
    client = await device(server)
    yield client
    await client.close()


async def test_every_route_answers_its_shape(laptop: Client, phone: Client) -> None:
    made = await json_of(await laptop.post("/api/conversations", json={"title": "Trip"}), 201)
    assert set(made) == CONVERSATION_KEYS and made["title"] == "Trip"
    cid = made["id"]
    q = await json_of(
        await laptop.post(
            f"/api/conversations/{cid}/messages",
            json={"id": "q1", "parent_id": None, "role": "user", "content": "Where to?"},
        ),
        201,
    )
    assert set(q) == MESSAGE_KEYS and q["status"] == "done" and q["conversation_id"] == cid
    listed = await json_of(await phone.get("/api/conversations"), 200)
    assert [c["id"] for c in listed["data"]] == [cid] and listed["next"] is None
    opened = await json_of(await phone.get(f"/api/conversations/{cid}"), 200)
    assert opened["conversation"]["id"] == cid and [m["id"] for m in opened["messages"]] == ["q1"]
    patched = await json_of(
        await phone.patch(f"/api/conversations/{cid}", json={"pinned": True, "title": "Rome"}), 200
    )
    assert patched["pinned"] is True and patched["title"] == "Rome"
    assert patched["version"] > made["version"]
    bad_parent = await laptop.post(
        f"/api/conversations/{cid}/messages",
        json={"parent_id": "nope", "role": "user", "content": "x"},
    )
    assert bad_parent.status == 400 and "parent_id" in (await bad_parent.json())["message"]
    assert (await laptop.delete(f"/api/conversations/{cid}")).status == 204
    assert (await phone.get(f"/api/conversations/{cid}")).status == 404


async def test_history_needs_an_account(server: TestServer, laptop: Client) -> None:
    async with TestClient(server) as anonymous:
        for method, path in (
            ("GET", "/api/conversations"),
            ("POST", "/api/conversations"),
            ("GET", "/api/sync"),
        ):
            response = await anonymous.request(method, path, json={})
            assert response.status == 401, (method, path)
        async with anonymous.ws_connect("/api/chat/ws") as ws:
            await ws.send_str(chat_with({"id": "c", "parent_id": None}, "x1"))
            frame = await ws.receive_json(timeout=5)
        assert frame["status"] == 400 and "conversation" in frame["message"]


async def test_bad_input_is_a_400_naming_the_field(laptop: Client) -> None:
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/api/conversations", {"id": "x" * 65}, "id"),
        ("POST", "/api/conversations", {"title": 5}, "title"),
        ("POST", "/api/conversations", [], "JSON object"),
        ("GET", "/api/conversations?limit=0", None, "limit"),
        ("GET", "/api/conversations?limit=201", None, "limit"),
        ("GET", "/api/conversations?before=%%%", None, "before"),
        ("GET", "/api/conversations?archived=maybe", None, "archived"),
        ("GET", "/api/sync?since=-1", None, "since"),
        ("GET", "/api/sync?since=%C2%B2", None, "since"),
    ]
    for method, path, body, field in cases:
        response = await laptop.request(method, path, json=body)
        assert response.status == 400, (path, body)
        assert field in (await response.json())["message"], (path, body)
    await laptop.post("/api/conversations", json={"id": "c"})
    for body, field in (
        ({"parent_id": None, "role": "assistant", "content": "x"}, "role"),
        ({"parent_id": None, "role": "user", "content": 5}, "content"),
        ({"parent_id": None, "role": "user", "content": [{"type": 1}]}, "content[0]"),
        ({"id": "m" * 65, "parent_id": None, "role": "user", "content": "x"}, "id"),
    ):
        response = await laptop.post("/api/conversations/c/messages", json=body)
        assert response.status == 400, body
        assert field in (await response.json())["message"], body
    export = await laptop.get("/api/conversations/c/export?format=pdf")
    assert export.status == 400 and "format" in (await export.json())["message"]


async def test_a_since_from_the_future_gets_reset(laptop: Client) -> None:
    await laptop.post("/api/conversations", json={"id": "c"})
    page = await json_of(await laptop.get("/api/sync", params={"since": 1000}), 200)
    assert page == {"reset": True, "version": 1}


async def test_two_devices_writing_at_once_end_with_the_same_history(
    laptop: Client, phone: Client
) -> None:
    await json_of(await laptop.post("/api/conversations", json={"id": "c"}), 201)

    async def write(client: Client, name: str) -> None:
        for number in range(10):
            body = {"id": f"{name}{number}", "parent_id": None, "role": "user", "content": name}
            await json_of(await client.post("/api/conversations/c/messages", json=body), 201)

    await asyncio.gather(write(laptop, "laptop"), write(phone, "phone"))
    laptop_version, laptop_changes = await pull(laptop, 0)
    phone_version, phone_changes = await pull(phone, 0)
    assert laptop_version == phone_version
    assert laptop_changes == phone_changes
    ids = {c["data"]["id"] for c in laptop_changes if c["kind"] == "message"}
    assert len(ids) == 20


async def test_a_change_on_one_device_pokes_the_others_sockets(
    laptop: Client, phone: Client
) -> None:
    async with phone.ws_connect("/api/chat/ws") as ws:
        # A write made before the socket subscribed could slip by: let the handshake settle.
        await ws.send_str('{"type": "cancel", "id": "none"}')
        made = await json_of(await laptop.post("/api/conversations", json={"id": "c"}), 201)
        assert await next_sync(ws) == made["version"]
        assert (await laptop.delete("/api/conversations/c")).status == 204
        version = await next_sync(ws)
    _, changes = await pull(phone, made["version"])
    assert changes == [{"kind": "conversation", "op": "delete", "data": {"id": "c"}}]
    assert version > made["version"]


async def test_a_chat_writes_its_answer_into_the_history(
    laptop: Client, phone: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await laptop.post("/api/conversations", json={"id": "c"})
    await laptop.post(
        "/api/conversations/c/messages",
        json={"id": "q", "parent_id": None, "role": "user", "content": "Hi"},
    )
    release = asyncio.Event()
    reply = sse_reply(["Hel", "lo"], usage={"prompt_tokens": 3, "completion_tokens": 2})
    reply.steps.insert(2, release)
    fake_openrouter.script(reply)
    conversation = {"id": "c", "parent_id": "q", "message_id": "a"}
    async with laptop.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_with(conversation, "chat-1"))

        # Made before upstream answers: another device sees it streaming, with its chat.
        async def streaming() -> bool:
            found = await json_of(await phone.get("/api/conversations/c"), 200)
            return any(m["id"] == "a" for m in found["messages"])

        await wait_until(streaming, "the answer's message exists")
        found = await json_of(await phone.get("/api/conversations/c"), 200)
        answer = found["messages"][-1]
        assert answer["status"] == "streaming" and answer["chat_id"] == "chat-1"
        assert answer["role"] == "assistant" and answer["parent_id"] == "q"
        release.set()
        frames = await chat_frames(ws, "chat-1")
    assert frames[-1]["type"] == "done"
    # Written before the done frame went out.
    found = await json_of(await phone.get("/api/conversations/c"), 200)
    answer = found["messages"][-1]
    assert answer["status"] == "done" and answer["content"] == "Hello"
    assert answer["usage"]["completion_tokens"] == 2


async def test_an_answer_finishing_with_every_device_closed_is_in_the_history(
    laptop: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await laptop.post("/api/conversations", json={"id": "c"})
    release = asyncio.Event()
    reply = sse_reply(["All ", "done"])
    reply.steps.insert(1, release)
    fake_openrouter.script(reply)
    async with laptop.ws_connect("/api/chat/ws") as ws:
        conversation = {"id": "c", "parent_id": None, "message_id": "a"}
        await ws.send_str(chat_with(conversation, "chat-2"))
        await fake_openrouter.started.wait()
    release.set()  # nobody listens any more

    async def written() -> bool:
        found = await json_of(await laptop.get("/api/conversations/c"), 200)
        return bool(found["messages"] and found["messages"][-1]["status"] == "done")

    await wait_until(written, "the answer was written with no listener")
    found = await json_of(await laptop.get("/api/conversations/c"), 200)
    assert found["messages"][-1]["content"] == "All done"


async def test_a_post_chat_writes_history_too(
    laptop: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await laptop.post("/api/conversations", json={"id": "c"})
    body = {**chat_body("Hi"), "conversation": {"id": "c", "parent_id": None, "message_id": "a"}}
    fake_openrouter.script(sse_reply(["Hi ", "there"]))
    response = await laptop.post("/api/chat/openrouter", json=body)
    assert response.status == 200 and await response.text() == "Hi there"
    found = await json_of(await laptop.get("/api/conversations/c"), 200)
    assert found["messages"][-1]["content"] == "Hi there"
    assert found["messages"][-1]["chat_id"] == response.headers["X-Chat-Id"]
    for conversation, status in (
        ({"id": "nope", "parent_id": None}, 404),
        ({"id": "c", "parent_id": "nope"}, 400),
        ({"id": "c", "parent_id": None, "message_id": "a"}, 409),
        ({"id": "c" * 65, "parent_id": None}, 400),
    ):
        refused = await laptop.post(
            "/api/chat/openrouter", json={**chat_body("Hi"), "conversation": conversation}
        )
        assert refused.status == status, conversation


async def test_search_finds_a_conversation_by_its_words(laptop: Client) -> None:
    await laptop.post("/api/conversations", json={"id": "bread", "title": "Baking"})
    await laptop.post(
        "/api/conversations/bread/messages",
        json={"parent_id": None, "role": "user", "content": "My sourdough starter smells odd"},
    )
    await laptop.post("/api/conversations", json={"id": "other", "title": "Taxes"})
    found = await json_of(await laptop.get("/api/conversations", params={"q": "Sourd"}), 200)
    assert [c["id"] for c in found["data"]] == ["bread"]
    assert "sourdough" in found["data"][0]["snippet"]


async def test_import_twice_adds_nothing_and_counts_broken_entries(laptop: Client) -> None:
    export = {
        "format": "chatrelay.conversations",
        "version": 1,
        "conversations": [
            {
                "id": "imp1",
                "title": "Imported",
                "updatedAt": 1_700_000_000_000,
                "systemPrompt": "Be brief.",
                "messages": [
                    {"id": "u1", "role": "user", "content": "Hi"},
                    {"id": "a1", "role": "assistant", "content": "Hello!", "model": "m/x",
                     "status": "done", "usage": {"total_tokens": 5}},
                ],
            },
            {"id": "broken", "title": "No messages list"},
            "not an object",
        ],
    }  # fmt: skip
    first = await json_of(await laptop.post("/api/conversations/import", json=export), 200)
    assert first == {"imported": 1, "skipped": 2}
    second = await json_of(await laptop.post("/api/conversations/import", json=export), 200)
    assert second == {"imported": 0, "skipped": 3}
    found = await json_of(await laptop.get("/api/conversations/imp1"), 200)
    assert [m["role"] for m in found["messages"]] == ["system", "user", "assistant"]
    markdown = await laptop.get("/api/conversations/imp1/export", params={"format": "md"})
    assert markdown.status == 200
    assert markdown.headers["Content-Disposition"].startswith("attachment")
    text = await markdown.text()
    assert "# Imported" in text and "Hello!" in text and "> System: Be brief." in text
    as_json = await laptop.get("/api/conversations/imp1/export")
    assert as_json.headers["Content-Disposition"].startswith("attachment")
    again = await json_of(
        await laptop.post("/api/conversations/import", json=await as_json.json()), 200
    )
    assert again["imported"] == 0


async def test_a_streaming_answer_can_be_followed_from_another_device(
    laptop: Client, phone: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await laptop.post("/api/conversations", json={"id": "c"})
    release = asyncio.Event()
    reply = sse_reply(["Live ", "on ", "both"])
    reply.steps.insert(3, release)
    fake_openrouter.script(reply)
    async with laptop.ws_connect("/api/chat/ws") as ws:
        conversation = {"id": "c", "parent_id": None, "message_id": "a"}
        await ws.send_str(chat_with(conversation, "chat-3"))
        await fake_openrouter.started.wait()
        found = await json_of(await phone.get("/api/conversations/c"), 200)
        chat_id = found["messages"][-1]["chat_id"]
        async with phone.ws_connect("/api/chat/ws") as other:
            await other.send_str(
                orjson.dumps({"type": "resume", "id": chat_id, "after": 0}).decode()
            )
            release.set()
            followed = await chat_frames(other, chat_id)
        frames = await chat_frames(ws, "chat-3")
    text = "".join(f["content"] for f in followed if f["type"] == "delta")
    assert text == "Live on both" == "".join(f["content"] for f in frames if f["type"] == "delta")


async def test_the_database_away_fails_history_with_503_and_spares_anonymous_chats(
    serve: Serve, make_postgres_server: Callable[[], PostgresServer]
) -> None:
    postgres = make_postgres_server()
    server = await serve(signup="open", database_url=postgres.create_database())
    laptop = await device(server, new=True)
    try:
        postgres.stop()
        response = await laptop.get("/api/conversations")
        assert response.status == 503
        assert (await response.json())["message"] == "Account store unavailable"
        # Not a TestClient: closing one closes its server too.
        async with aiohttp.ClientSession(str(server.make_url(""))) as anonymous:
            chat = await anonymous.post("/api/chat/openrouter", json=chat_body("Still here"))
            assert chat.status == 200 and await chat.text() == "Still here"
        postgres.start()

        async def back() -> bool:
            return (await laptop.get("/api/conversations")).status == 200

        await wait_until(back, "the history routes answer again", 30)
    finally:
        await laptop.close()


async def test_deleting_the_account_deletes_its_history(server: TestServer, laptop: Client) -> None:
    # The first account is the admin, whom SPEC keeps: a second one leaves.
    bob = await device(server, "bob@example.com", new=True)
    try:
        await bob.post("/api/conversations", json={"id": "c", "title": "private words"})
        await bob.post(
            "/api/conversations/c/messages",
            json={"parent_id": None, "role": "user", "content": "private words"},
        )
        deleted = await bob.request("DELETE", "/api/account", json={"password": PASSWORD})
        assert deleted.status == 204, await deleted.text()
        async with server.app[database_key].transaction(write=False) as db:
            for table in (conversations, messages, history_counters):
                assert (await db.execute(select(func.count()).select_from(table))).scalar() == 0
    finally:
        await bob.close()  # its server too: a TestClient closes the server it was given
