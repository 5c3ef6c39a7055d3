"""SPEC "History and sync", read to the letter and checked from outside: two accounts on one
server (SQLite and PostgreSQL in turn), every route's status, keys and types, the bad input a client
may send, and what another account's ids get (the same 404 as unknown ones)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.clients import receive
from tests.conftest import Serve, chat_body
from tests.fake_openrouter import (
    COMMENT,
    FakeOpenRouter,
    Reply,
    chunk,
    error_reply,
    event,
    sse_reply,
)
from tests.history.devices import (
    CONVERSATION_KEYS,
    MESSAGE_KEYS,
    Client,
    chat_frames,
    chat_with,
    device,
    json_of,
    next_sync,
)
from tests.waiting import wait_until


@pytest.fixture
async def server(serve: Serve, database_url: str) -> TestServer:
    return await serve(signup="open", database_url=database_url)


def check_conversation(found: dict[str, Any]) -> None:
    assert set(found) == CONVERSATION_KEYS, found
    assert isinstance(found["id"], str) and isinstance(found["title"], str)
    assert isinstance(found["created_at"], str) and isinstance(found["updated_at"], str)
    assert isinstance(found["pinned"], bool) and isinstance(found["archived"], bool)
    assert type(found["version"]) is int


def check_message(found: dict[str, Any]) -> None:
    # SPEC's keys; more only where an answer has them (README: a message's keys).
    extra = set(found) - MESSAGE_KEYS
    assert set(found) >= MESSAGE_KEYS and extra <= {"reasoning", "tool_calls", "tool_call_id"}
    assert all(found[key] is not None for key in extra), found
    assert found["status"] in ("streaming", "done", "cancelled", "error")
    assert isinstance(found["created_at"], str) and type(found["version"]) is int


async def message(client: Client, cid: str, **body: Any) -> Any:
    return await client.post(f"/api/conversations/{cid}/messages", json=body)


async def error_message(response: Any, status: int) -> str:
    assert response.status == status, (response.status, await response.text())
    text: str = (await response.json())["message"]
    return text


async def test_without_an_account_every_route_is_401(server: TestServer) -> None:
    async with TestClient(server) as anonymous:
        for method, path in (
            ("GET", "/api/conversations"),
            ("POST", "/api/conversations"),
            ("GET", "/api/conversations/c"),
            ("PATCH", "/api/conversations/c"),
            ("DELETE", "/api/conversations/c"),
            ("POST", "/api/conversations/c/messages"),
            ("POST", "/api/conversations/import"),
            ("GET", "/api/conversations/c/export"),
            ("GET", "/api/sync"),
        ):
            response = await anonymous.request(method, path, json={})
            assert response.status == 401, (method, path)
            assert isinstance((await response.json())["message"], str)


async def test_a_conversation_and_its_messages_have_spec_shapes(ann: Client) -> None:
    made = await json_of(await ann.post("/api/conversations", json={}), 201)
    check_conversation(made)
    assert made["pinned"] is False and made["archived"] is False
    cid = made["id"]
    assert 0 < len(cid) <= 64
    q = await json_of(await message(ann, cid, parent_id=None, role="user", content="Hi"), 201)
    check_message(q)
    assert (q["conversation_id"], q["parent_id"], q["role"], q["content"]) == (
        cid,
        None,
        "user",
        "Hi",
    )
    assert q["status"] == "done" and q["error"] is None and q["chat_id"] is None
    parts = [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "x"}}]
    edit = await json_of(
        await message(ann, cid, id="e1", parent_id=None, role="user", content=parts), 201
    )
    assert edit["content"] == parts and edit["id"] == "e1"
    system = await json_of(
        await message(ann, cid, parent_id=q["id"], role="system", content="Be brief."), 201
    )
    assert system["parent_id"] == q["id"]
    opened = await json_of(await ann.get(f"/api/conversations/{cid}"), 200)
    assert set(opened) == {"conversation", "messages"}
    check_conversation(opened["conversation"])
    # Every branch: the edited question beside the first one.
    assert {m["id"] for m in opened["messages"]} == {q["id"], "e1", system["id"]}
    for found in opened["messages"]:
        check_message(found)
    # Each write took a newer version of the account's.
    versions = [q["version"], edit["version"], system["version"]]
    assert versions == sorted(versions) and len(set(versions)) == 3
    assert opened["conversation"]["version"] > made["version"]


async def test_every_field_of_a_new_conversation_is_optional(ann: Client) -> None:
    # `{"id"?, "title"?}`: no body, an empty one, or nulls all make a conversation.
    bare = await json_of(await ann.post("/api/conversations"), 201)
    check_conversation(bare)
    nulls = await json_of(
        await ann.post("/api/conversations", json={"id": None, "title": None}), 201
    )
    check_conversation(nulls)
    assert nulls["id"] != bare["id"] and nulls["title"] == bare["title"]
    named = await json_of(await ann.post("/api/conversations", json={"id": "n"}), 201)
    retry = await ann.post("/api/conversations", json={"id": "n", "title": None})
    assert retry.status in (200, 201) and await retry.json() == named
    untouched = await json_of(await ann.patch("/api/conversations/n"), 200)
    assert untouched == named
    said = await json_of(
        await message(ann, "n", id=None, parent_id=None, role="user", content="Hi"), 201
    )
    assert isinstance(said["id"], str) and 0 < len(said["id"]) <= 64


async def test_client_ids_up_to_64_characters_and_safe_retries(ann: Client) -> None:
    longest = "c" * 64
    made = await json_of(await ann.post("/api/conversations", json={"id": longest}), 201)
    assert made["id"] == longest
    refused = await ann.post("/api/conversations", json={"id": "c" * 65})
    assert "id" in await error_message(refused, 400)
    # The same id and content again (a retry after a lost answer) is not an error.
    again = await ann.post("/api/conversations", json={"id": longest})
    assert again.status in (200, 201)
    assert (await again.json())["id"] == longest
    listed = await json_of(await ann.get("/api/conversations"), 200)
    assert [c["id"] for c in listed["data"]] == [longest]
    body = {"id": "m" * 64, "parent_id": None, "role": "user", "content": "Hi"}
    first = await json_of(await message(ann, longest, **body), 201)
    retry = await message(ann, longest, **body)
    assert retry.status in (200, 201)
    assert await retry.json() == first
    opened = await json_of(await ann.get(f"/api/conversations/{longest}"), 200)
    assert len(opened["messages"]) == 1
    too_long = await message(ann, longest, **{**body, "id": "m" * 65})
    assert "id" in await error_message(too_long, 400)
    parent = await message(ann, longest, **{**body, "id": "n", "parent_id": "p" * 65})
    assert "parent_id" in await error_message(parent, 400)


async def test_parent_id_must_be_a_message_of_that_conversation(ann: Client) -> None:
    await ann.post("/api/conversations", json={"id": "one"})
    await ann.post("/api/conversations", json={"id": "two"})
    await json_of(await message(ann, "one", id="q1", parent_id=None, role="user", content="A"), 201)
    for parent in ("q1", "nowhere"):
        refused = await message(ann, "two", parent_id=parent, role="user", content="B")
        assert "parent_id" in await error_message(refused, 400), parent
    bad_role = await message(ann, "one", parent_id=None, role="assistant", content="B")
    assert "role" in await error_message(bad_role, 400)
    no_content = await message(ann, "one", parent_id=None, role="user")
    assert "content" in await error_message(no_content, 400)
    unknown = await message(ann, "three", parent_id=None, role="user", content="B")
    await error_message(unknown, 404)


async def test_another_accounts_ids_get_the_same_404_as_unknown_ones(
    ann: Client, bob: Client
) -> None:
    await ann.post("/api/conversations", json={"id": "secret", "title": "Ann's"})
    await message(ann, "secret", id="m1", parent_id=None, role="user", content="private")
    for cid in ("secret", "unknown"):
        for method, path, body in (
            ("GET", f"/api/conversations/{cid}", None),
            ("PATCH", f"/api/conversations/{cid}", {"title": "mine"}),
            ("DELETE", f"/api/conversations/{cid}", None),
            (
                "POST",
                f"/api/conversations/{cid}/messages",
                {"parent_id": None, "role": "user", "content": "x"},
            ),
            ("GET", f"/api/conversations/{cid}/export", None),
        ):
            response = await bob.request(method, path, json=body)
            message_text = await error_message(response, 404)
            assert "private" not in message_text, (method, path)
    # Bob's answers for Ann's id and an unknown one are alike but for the id itself.
    mine = await bob.get("/api/conversations/secret")
    other = await bob.get("/api/conversations/unknown")
    assert (await mine.json())["message"].replace("secret", "X") == (await other.json())[
        "message"
    ].replace("unknown", "X")
    # Ann's message id as Bob's parent: not a message of Bob's conversation.
    await bob.post("/api/conversations", json={"id": "bobs"})
    refused = await message(bob, "bobs", parent_id="m1", role="user", content="x")
    assert "parent_id" in await error_message(refused, 400)
    # Ids are each account's own: Bob may use the same ones.
    same = await json_of(await bob.post("/api/conversations", json={"id": "secret"}), 201)
    assert same["title"] != "Ann's"
    mine_m = await message(bob, "secret", id="m1", parent_id=None, role="user", content="bob's")
    assert (await json_of(mine_m, 201))["content"] == "bob's"
    listed = await json_of(await bob.get("/api/conversations", params={"q": "private"}), 200)
    assert listed["data"] == []
    _, changes = await pull_all(bob)
    assert all(c["data"].get("content") != "private" for c in changes)
    kept = await json_of(await ann.get("/api/conversations/secret"), 200)
    assert kept["conversation"]["title"] == "Ann's"
    assert [m["content"] for m in kept["messages"]] == ["private"]


async def pull_all(client: Client) -> tuple[int, list[dict[str, Any]]]:
    since, changes = 0, []
    while True:
        page = await json_of(await client.get("/api/sync", params={"since": since}), 200)
        changes += page["changes"]
        since = page["version"]
        if not page["more"]:
            return since, changes


async def test_list_limit_and_cursor(ann: Client) -> None:
    for value in ("0", "201", "abc", "-1", "1.5"):
        response = await ann.get("/api/conversations", params={"limit": value})
        assert "limit" in await error_message(response, 400), value
    before = await ann.get("/api/conversations", params={"before": "not a cursor"})
    assert "before" in await error_message(before, 400)
    archived = await ann.get("/api/conversations", params={"archived": "maybe"})
    assert "archived" in await error_message(archived, 400)
    made = []
    for number in range(53):
        created = await ann.post("/api/conversations", json={"id": f"c{number:02}"})
        made.append((await json_of(created, 201))["id"])
    first = await json_of(await ann.get("/api/conversations"), 200)
    assert set(first) == {"data", "next"}
    assert len(first["data"]) == 50 and isinstance(first["next"], str)  # the default 50
    # The most recently updated first.
    assert [c["id"] for c in first["data"]] == made[::-1][:50]
    rest = await json_of(await ann.get("/api/conversations", params={"before": first["next"]}), 200)
    assert [c["id"] for c in rest["data"]] == made[::-1][50:] and rest["next"] is None
    whole = await json_of(await ann.get("/api/conversations", params={"limit": "200"}), 200)
    assert len(whole["data"]) == 53 and whole["next"] is None
    paged: list[str] = []
    cursor = None
    while True:
        params = {"limit": "7"} | ({"before": cursor} if cursor else {})
        page = await json_of(await ann.get("/api/conversations", params=params), 200)
        assert len(page["data"]) <= 7
        paged += [c["id"] for c in page["data"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert paged == made[::-1]
    # A message moves its conversation to the top.
    await message(ann, "c00", parent_id=None, role="user", content="bump")
    top = await json_of(await ann.get("/api/conversations", params={"limit": "1"}), 200)
    assert top["data"][0]["id"] == "c00"


async def test_archived_filter_and_patch(ann: Client) -> None:
    await ann.post("/api/conversations", json={"id": "kept", "title": "Kept"})
    await ann.post("/api/conversations", json={"id": "old", "title": "Old"})
    patched = await json_of(
        await ann.patch("/api/conversations/old", json={"archived": True, "pinned": True}), 200
    )
    check_conversation(patched)
    assert patched["archived"] is True and patched["pinned"] is True
    renamed = await json_of(await ann.patch("/api/conversations/kept", json={"title": "New"}), 200)
    assert renamed["title"] == "New"
    for body, field in (({"pinned": "yes"}, "pinned"), ({"archived": 1}, "archived")):
        response = await ann.patch("/api/conversations/kept", json=body)
        assert field in await error_message(response, 400)
    title = await ann.patch("/api/conversations/kept", json={"title": 5})
    assert "title" in await error_message(title, 400)
    yes = await json_of(await ann.get("/api/conversations", params={"archived": "true"}), 200)
    no = await json_of(await ann.get("/api/conversations", params={"archived": "false"}), 200)
    assert [c["id"] for c in yes["data"]] == ["old"] and [c["id"] for c in no["data"]] == ["kept"]


async def test_delete_is_204_and_gone_everywhere(server: TestServer, ann: Client) -> None:
    await ann.post("/api/conversations", json={"id": "c"})
    await message(ann, "c", id="m", parent_id=None, role="user", content="x")
    _, before = await pull_all(ann)
    phone = await device(server, "ann@example.com")
    try:
        version = (await json_of(await phone.get("/api/sync"), 200))["version"]
        deleted = await ann.delete("/api/conversations/c")
        assert deleted.status == 204 and await deleted.read() == b""
        await error_message(await phone.get("/api/conversations/c"), 404)
        await error_message(await ann.delete("/api/conversations/c"), 404)
        page = await json_of(await phone.get("/api/sync", params={"since": version}), 200)
        assert {"kind": "conversation", "op": "delete", "data": {"id": "c"}} in page["changes"]
        listed = await json_of(await phone.get("/api/conversations"), 200)
        assert listed["data"] == []
    finally:
        await phone.close()
    assert before


async def test_search_words_prefix_best_first_with_snippets(ann: Client) -> None:
    chats = {
        "bread": ("Baking", ["My Sourdough starter smells odd", "Feed it flour"]),
        "once": ("Groceries", ["Buy flour and sourdough bread"]),
        "taxes": ("Taxes", ["File before April"]),
        "title": ("Sourdough notes", ["Nothing here"]),
    }
    for cid, (title, said) in chats.items():
        await ann.post("/api/conversations", json={"id": cid, "title": title})
        parent = None
        for text in said:
            made = await json_of(
                await message(ann, cid, parent_id=parent, role="user", content=text), 201
            )
            parent = made["id"]
    found = await json_of(await ann.get("/api/conversations", params={"q": "SOURD"}), 200)
    ids = [c["id"] for c in found["data"]]
    assert set(ids) == {"bread", "once", "title"}
    for each in found["data"]:
        assert set(each) == CONVERSATION_KEYS | {"snippet"}
        assert isinstance(each["snippet"], str) and each["snippet"]
    snippets = {c["id"]: c["snippet"] for c in found["data"]}
    assert "sourdough" in snippets["once"].lower()
    # Every word but the last must be whole; the last is a prefix.
    both = await json_of(await ann.get("/api/conversations", params={"q": "flour sour"}), 200)
    assert "once" in {c["id"] for c in both["data"]}
    not_prefix = await json_of(await ann.get("/api/conversations", params={"q": "flo bread"}), 200)
    assert not_prefix["data"] == []
    none = await json_of(await ann.get("/api/conversations", params={"q": "zebra"}), 200)
    assert none["data"] == [] and none["next"] is None
    # Best match first: the conversation that says "april" most.
    await ann.post("/api/conversations", json={"id": "april", "title": "Spring"})
    await message(ann, "april", parent_id=None, role="user", content="April april April in April")
    ranked = await json_of(await ann.get("/api/conversations", params={"q": "april"}), 200)
    assert ranked["data"][0]["id"] == "april"


async def test_import_counts_broken_entries_and_adds_nothing_twice(ann: Client) -> None:
    good = {
        "id": "imp",
        "title": "Imported",
        "updatedAt": 1_700_000_000_000,
        "messages": [
            {"id": "u", "role": "user", "content": "Hi"},
            {"id": "a", "role": "assistant", "content": "Hello", "status": "done"},
        ],
    }
    broken = [
        {"id": "x" * 65, "title": "Too long an id", "messages": []},
        {"id": "bad-role", "title": "Role", "messages": [{"role": "wizard", "content": "x"}]},
        {"title": "No id", "messages": []},
        "not an object",
    ]
    export = {"format": "chatrelay.conversations", "conversations": [good, *broken]}
    first = await json_of(await ann.post("/api/conversations/import", json=export), 200)
    # SPEC's answer, to the letter: the two counts.
    assert first == {"imported": 1, "skipped": 4}
    version = (await json_of(await ann.get("/api/sync"), 200))["version"]
    second = await json_of(await ann.post("/api/conversations/import", json=export), 200)
    assert second == {"imported": 0, "skipped": 5}
    # Nothing added: no change, no new row.
    assert (await json_of(await ann.get("/api/sync"), 200))["version"] == version
    listed = await json_of(await ann.get("/api/conversations"), 200)
    assert [c["id"] for c in listed["data"]] == ["imp"]
    opened = await json_of(await ann.get("/api/conversations/imp"), 200)
    assert [(m["role"], m["content"]) for m in opened["messages"]] == [
        ("user", "Hi"),
        ("assistant", "Hello"),
    ]
    assert opened["messages"][1]["parent_id"] == "u"
    for body in ({"conversations": "none"}, "text", 5):
        refused = await ann.post("/api/conversations/import", json=body)
        await error_message(refused, 400)
    not_json = await ann.post(
        "/api/conversations/import", data=b"{", headers={"Content-Type": "application/json"}
    )
    await error_message(not_json, 400)


async def test_export_as_json_and_markdown_attachments(ann: Client) -> None:
    await ann.post("/api/conversations", json={"id": "c", "title": "Trip to Rome"})
    await message(ann, "c", id="q", parent_id=None, role="user", content="Where to eat?")
    for form in ("json", "md", None):
        params = {} if form is None else {"format": form}
        response = await ann.get("/api/conversations/c/export", params=params)
        assert response.status == 200, form
        assert response.headers["Content-Disposition"].startswith("attachment"), form
        text = await response.text()
        assert "Where to eat?" in text
        if form != "md":
            data = orjson.loads(text)
            assert data["conversations"][0]["id"] == "c"
            # The export imports back as the same conversation: nothing added.
            again = await json_of(await ann.post("/api/conversations/import", json=data), 200)
            assert again["imported"] == 0
        else:
            assert "Trip to Rome" in text
    bad = await ann.get("/api/conversations/c/export", params={"format": "pdf"})
    assert "format" in await error_message(bad, 400)


async def test_sync_pages_resets_and_bad_cursors(ann: Client) -> None:
    empty = await json_of(await ann.get("/api/sync"), 200)
    assert empty == {"version": 0, "changes": [], "more": False}
    for value in ("-1", "abc", "1.0", "1e3"):
        response = await ann.get("/api/sync", params={"since": value})
        assert "since" in await error_message(response, 400), value
    made = await json_of(await ann.post("/api/conversations", json={"id": "c"}), 201)
    page = await json_of(await ann.get("/api/sync", params={"since": "0"}), 200)
    assert set(page) == {"version", "changes", "more"} and page["more"] is False
    assert page["version"] == made["version"]
    assert page["changes"] == [{"kind": "conversation", "op": "put", "data": made}]
    future = await json_of(await ann.get("/api/sync", params={"since": "999999"}), 200)
    assert future == {"reset": True, "version": made["version"]}
    # 600 messages in one import: pages of at most 500, oldest first, none missed.
    chain = [{"id": f"m{n}", "role": "user", "content": f"n{n}"} for n in range(600)]
    export = {"conversations": [{"id": "big", "title": "Big", "messages": chain}]}
    assert (await json_of(await ann.post("/api/conversations/import", json=export), 200))[
        "imported"
    ] == 1
    since = made["version"]
    seen: list[dict[str, Any]] = []
    pages = 0
    while True:
        page = await json_of(await ann.get("/api/sync", params={"since": since}), 200)
        assert len(page["changes"]) <= 500
        for change in page["changes"]:
            assert set(change) == {"kind", "op", "data"}
            assert change["kind"] in ("conversation", "message")
            assert change["op"] in ("put", "delete")
        versions = [c["data"]["version"] for c in page["changes"]]
        assert versions == sorted(versions) and all(v > since for v in versions)
        seen += page["changes"]
        assert page["version"] >= since
        since = page["version"]
        pages += 1
        if not page["more"]:
            break
    assert pages >= 2
    ids = [c["data"]["id"] for c in seen if c["kind"] == "message"]
    assert len(ids) == len(set(ids)) == 600
    for change in seen:
        if change["kind"] == "message":
            check_message(change["data"])


async def test_a_chat_without_an_account_carrying_conversation_is_400(
    server: TestServer, fake_openrouter: FakeOpenRouter
) -> None:
    async with TestClient(server) as anonymous:
        body = {**chat_body("Hi"), "conversation": {"id": "c", "parent_id": None}}
        response = await anonymous.post("/api/chat/openrouter", json=body)
        assert "conversation" in await error_message(response, 400)
        async with anonymous.ws_connect("/api/chat/ws") as ws:
            await ws.send_str(chat_with({"id": "c", "parent_id": None}, "w1"))
            frame = await receive(ws)
        assert frame["type"] == "error" and frame["id"] == "w1" and frame["status"] == 400
        assert "conversation" in frame["message"]
    assert fake_openrouter.requests == []


async def test_a_chats_answer_is_written_streaming_then_finished_without_a_listener(
    server: TestServer, ann: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await ann.post("/api/conversations", json={"id": "c"})
    await message(ann, "c", id="q", parent_id=None, role="user", content="Hi")
    release = asyncio.Event()
    reply = sse_reply(["Hel", "lo"], usage={"prompt_tokens": 3, "completion_tokens": 2})
    reply.steps.insert(0, release)
    fake_openrouter.script(reply)
    phone = await device(server, "ann@example.com")
    try:
        async with phone.ws_connect("/api/chat/ws") as watcher:
            await watcher.send_str('{"type": "settle", "id": "settle"}')
            await receive(watcher)  # the cancel's error: the socket is subscribed
            async with ann.ws_connect("/api/chat/ws") as ws:
                conversation = {"id": "c", "parent_id": "q", "message_id": "ans"}
                await ws.send_str(chat_with(conversation, "chat-1"))
                await fake_openrouter.started.wait()
                # Made before upstream was called: streaming, with its chat and model.
                opened = await json_of(await phone.get("/api/conversations/c"), 200)
                answer = next(m for m in opened["messages"] if m["id"] == "ans")
                check_message(answer)
                assert answer["status"] == "streaming" and answer["chat_id"] == "chat-1"
                assert answer["model"] == "openai/gpt-4o-mini" and answer["role"] == "assistant"
                assert answer["parent_id"] == "q" and answer["conversation_id"] == "c"
                synced = await next_sync(watcher)
                assert synced >= answer["version"]
            release.set()  # nobody listens to the chat any more

            async def finished() -> bool:
                found = await json_of(await phone.get("/api/conversations/c"), 200)
                return any(m["id"] == "ans" and m["status"] == "done" for m in found["messages"])

            await wait_until(finished, "the answer was written with nobody listening")
            frame_version = await next_sync(watcher)
        opened = await json_of(await phone.get("/api/conversations/c"), 200)
        answer = next(m for m in opened["messages"] if m["id"] == "ans")
        assert answer["content"] == "Hello" and answer["usage"]["completion_tokens"] == 2
        assert answer["error"] is None and frame_version >= answer["version"]
    finally:
        await phone.close()


async def test_a_post_chat_writes_history_and_names_its_fields(
    ann: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await ann.post("/api/conversations", json={"id": "c"})
    await ann.post("/api/conversations", json={"id": "d"})
    await message(ann, "d", id="elsewhere", parent_id=None, role="user", content="x")
    fake_openrouter.script(sse_reply(["Hi ", "there"]))
    body = {**chat_body("Hi"), "conversation": {"id": "c", "parent_id": None}}
    response = await ann.post("/api/chat/openrouter", json=body)
    assert response.status == 200 and await response.text() == "Hi there"
    opened = await json_of(await ann.get("/api/conversations/c"), 200)
    [answer] = opened["messages"]
    assert answer["chat_id"] == response.headers["X-Chat-Id"] and answer["status"] == "done"
    for conversation, status, field in (
        ({"id": "c", "parent_id": "elsewhere"}, 400, "parent_id"),
        ({"id": "c" * 65, "parent_id": None}, 400, "conversation.id"),
        ({"id": "c", "parent_id": None, "message_id": "m" * 65}, 400, "message_id"),
        ("c", 400, "conversation"),
        ({"id": "nope", "parent_id": None}, 404, ""),
    ):
        refused = await ann.post(
            "/api/chat/openrouter", json={**chat_body("Hi"), "conversation": conversation}
        )
        assert field in await error_message(refused, status), conversation
    assert len(fake_openrouter.requests) == 1


async def test_every_socket_of_the_account_hears_sync_frames(
    server: TestServer, ann: Client, bob: Client
) -> None:
    phone = await device(server, "ann@example.com")
    try:
        async with (
            phone.ws_connect("/api/chat/ws") as one,
            ann.ws_connect("/api/chat/ws") as two,
            bob.ws_connect("/api/chat/ws") as bobs,
        ):
            for ws in (one, two, bobs):
                await ws.send_str('{"type": "settle", "id": "settle"}')
                await receive(ws)
            made = await json_of(await ann.post("/api/conversations", json={"id": "c"}), 201)
            for ws in (one, two):
                frame = await receive(ws, 2.0)
                assert frame == {"type": "sync", "version": made["version"]}
            # Another account's socket hears nothing of it.
            await bob.post("/api/conversations", json={"id": "b"})
            frame = await receive(bobs, 2.0)
            assert frame["type"] == "sync" and frame["version"] == 1
    finally:
        await phone.close()


async def test_a_chat_frame_with_conversation_answers_as_usual(
    ann: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await ann.post("/api/conversations", json={"id": "c"})
    fake_openrouter.script(sse_reply(["Yes"]))
    async with ann.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_with({"id": "c", "parent_id": None, "message_id": "a"}, "k"))
        frames = await chat_frames(ws, "k")
    assert frames[-1]["type"] == "done"
    opened = await json_of(await ann.get("/api/conversations/c"), 200)
    assert [(m["id"], m["content"], m["status"]) for m in opened["messages"]] == [
        ("a", "Yes", "done")
    ]


async def test_an_answer_that_fails_or_is_cancelled_says_so(
    ann: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await ann.post("/api/conversations", json={"id": "c"})
    fake_openrouter.script(
        error_reply(429, "Slow down"), Reply(steps=[COMMENT, event(chunk("Par")), "hang"])
    )
    async with ann.ws_connect("/api/chat/ws") as ws:
        await ws.send_str(chat_with({"id": "c", "parent_id": None, "message_id": "bad"}, "k1"))
        failed = await chat_frames(ws, "k1")
        await ws.send_str(chat_with({"id": "c", "parent_id": None, "message_id": "cut"}, "k2"))
        await wait_until(lambda: len(fake_openrouter.requests) == 2, "the second chat started")
        await ws.send_str('{"type": "cancel", "id": "k2"}')
        cancelled = await chat_frames(ws, "k2")
    assert failed[-1]["type"] == "error" and failed[-1]["status"] == 429
    assert cancelled[-1]["finish_reason"] == "cancelled"
    opened = await json_of(await ann.get("/api/conversations/c"), 200)
    by_id = {m["id"]: m for m in opened["messages"]}
    assert by_id["bad"]["status"] == "error"
    assert by_id["bad"]["error"] == {"status": 429, "message": "Slow down"}
    assert by_id["cut"]["status"] == "cancelled" and by_id["cut"]["error"] is None
    assert by_id["cut"]["content"] == "Par"


async def test_a_chat_frames_conversation_refused_like_the_routes(
    ann: Client, bob: Client, fake_openrouter: FakeOpenRouter
) -> None:
    await ann.post("/api/conversations", json={"id": "anns"})
    await bob.post("/api/conversations", json={"id": "one"})
    await bob.post("/api/conversations", json={"id": "two"})
    await message(bob, "two", id="elsewhere", parent_id=None, role="user", content="x")
    token = (await json_of(await bob.post("/api/tokens", json={"name": "script"}), 201))["token"]
    async with bob.ws_connect("/api/chat/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        refusals: list[tuple[dict[str, Any], int, str]] = [
            ({"id": "anns", "parent_id": None}, 404, ""),
            ({"id": "nowhere", "parent_id": None}, 404, ""),
            ({"id": "one", "parent_id": "elsewhere"}, 400, "parent_id"),
            ({"id": "one", "parent_id": None, "message_id": "m" * 65}, 400, "message_id"),
        ]
        for number, (conversation, status, field) in enumerate(refusals):
            chat_id = f"r{number}"
            await ws.send_str(chat_with(conversation, chat_id))
            [frame] = await chat_frames(ws, chat_id)
            assert frame["type"] == "error" and frame["status"] == status, conversation
            assert field in frame["message"], conversation
        # A socket signed in by a personal token hears its account's changes too.
        made = await json_of(await bob.post("/api/conversations", json={"id": "three"}), 201)
        assert await next_sync(ws, 2.0) == made["version"]
    assert fake_openrouter.requests == []
    assert (await json_of(await ann.get("/api/conversations/anns"), 200))["messages"] == []


async def test_an_import_never_hangs_a_message_from_another_conversation(ann: Client) -> None:
    await ann.post("/api/conversations", json={"id": "here"})
    await message(ann, "here", id="shared", parent_id=None, role="user", content="Mine")
    entry = {
        "id": "new",
        "title": "Imported",
        "messages": [
            {"id": "shared", "role": "user", "content": "Other"},
            {"id": "reply", "role": "assistant", "content": "Hi"},
        ],
    }
    result = await json_of(
        await ann.post("/api/conversations/import", json={"conversations": [entry]}), 200
    )
    assert result == {"imported": 0, "skipped": 1}
    opened = await json_of(await ann.get("/api/conversations/here"), 200)
    assert [(m["id"], m["content"]) for m in opened["messages"]] == [("shared", "Mine")]
    await error_message(await ann.get("/api/conversations/new"), 404)
