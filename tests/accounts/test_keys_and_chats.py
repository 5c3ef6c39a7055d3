"""An account's key and chats (SPEC "Accounts", "Durable chats", "Limits"), on both engines:
the key follows the account to another browser and is never in the database in clear; a
chat belongs to the account, so any of its devices may resume or cancel it, and nobody else."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from server.config import DATABASE_FILE
from tests.account_clients import PASSWORD, Browser
from tests.accounts.conftest import MakeApp, MakeBrowser
from tests.clients import chat_frame, receive, resume_frame, text_of, until_end
from tests.conftest import SERVER_KEY, USER_KEY, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event, sse_reply
from tests.postgres_server import PostgresServer

HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])
OTHER_KEY = "sk-or-v1-laptop-key-22222222222wxyz"


async def profile_of(browser: Browser) -> dict[str, Any]:
    status, data, _ = await browser.call("GET", "/api/profile")
    assert status == 200
    profile: dict[str, Any] = data
    return profile


async def test_the_key_saved_signed_in_follows_the_account_to_another_browser(
    make_app: MakeApp, make_browser: MakeBrowser, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_app()
    phone = make_browser(client)
    await phone.sign_up("ann@example.org")
    status, data, _ = await phone.call("PUT", "/api/profile", {"openrouter_api_key": USER_KEY})
    assert status == 200
    assert data == {"openrouter_api_key_set": True, "source": "account", "hint": "…abcd"}
    laptop = make_browser(client)
    assert (await profile_of(laptop))["source"] == "server"
    await laptop.sign_in("ann@example.org")
    assert await profile_of(laptop) == data
    async with laptop.session.post(laptop.url + "/api/chat/openrouter", json=chat_body()) as r:
        assert r.status == 200 and await r.text() == "Hello"
    assert fake_openrouter.requests[-1].headers["Authorization"] == f"Bearer {USER_KEY}"
    # Cleared in the account: every browser of it falls back to the server key.
    status, data, _ = await laptop.call("DELETE", "/api/profile")
    assert data["source"] == "server"
    assert (await profile_of(phone))["source"] == "server"
    await laptop.call("DELETE", "/api/session")
    assert (await profile_of(laptop))["source"] == "server"


async def test_a_key_saved_before_signing_in_moves_to_an_account_without_one(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(signup="open")
    first = make_browser(client)
    await first.sign_up("ann@example.org")
    await first.call("DELETE", "/api/session")
    await first.call("PUT", "/api/profile", {"openrouter_api_key": USER_KEY})
    await first.sign_in("ann@example.org")
    assert await profile_of(first) == {
        "openrouter_api_key_set": True,
        "source": "account",
        "hint": "…abcd",
    }
    # An account that has a key keeps it; the browser's own stays in its session.
    other = make_browser(client)
    await other.call("PUT", "/api/profile", {"openrouter_api_key": OTHER_KEY})
    await other.sign_in("ann@example.org")
    assert (await profile_of(other))["hint"] == "…abcd"
    await other.call("DELETE", "/api/session")
    assert (await profile_of(other))["hint"] == "…wxyz"


async def test_the_key_password_and_token_are_nowhere_in_the_database_in_clear(
    make_app: MakeApp, make_browser: MakeBrowser, database_url: str, request: pytest.FixtureRequest
) -> None:
    client = await make_app()
    ann = make_browser(client)
    await ann.sign_up("ann@example.org")
    await ann.call("PUT", "/api/profile", {"openrouter_api_key": USER_KEY})
    token = (await ann.make_token())["token"]
    assert (await make_browser(client, {"Authorization": f"Bearer {token}"}).account()) is not None
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        stored = b"".join(
            p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(DATABASE_FILE)
        )
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        stored = server.dump(urlsplit(database_url).path.lstrip("/"))
    assert b"ann@example.org" in stored  # the search does find what is there
    for secret in (USER_KEY, PASSWORD, token, token.removeprefix("crt_")):
        assert secret.encode() not in stored, secret


async def test_an_accounts_chat_is_resumed_and_cancelled_from_its_other_device_only(
    make_app: MakeApp, make_browser: MakeBrowser, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_app(signup="open")
    phone, laptop, stranger = make_browser(client), make_browser(client), make_browser(client)
    await phone.sign_up("ann@example.org")
    await laptop.sign_in("ann@example.org")
    await stranger.sign_up("bob@example.org")
    fake_openrouter.script(HANG)
    async with phone.session.ws_connect(phone.url + "/api/chat/ws") as ws:
        await ws.send_str(chat_frame("mine"))
        assert (await receive(ws))["content"] == "started"
    async with stranger.session.ws_connect(stranger.url + "/api/chat/ws") as theirs:
        await theirs.send_str(resume_frame("mine", 0))
        assert (await receive(theirs))["status"] == 404
    async with stranger.session.delete(stranger.url + "/api/chats/mine") as deleted:
        assert deleted.status == 404
    async with laptop.session.ws_connect(laptop.url + "/api/chat/ws") as ws:
        await ws.send_str(resume_frame("mine", 0))
        assert (await receive(ws))["content"] == "started"
    async with laptop.session.delete(laptop.url + "/api/chats/mine") as deleted:
        assert deleted.status == 204
    await fake_openrouter.requests[0].wait_dropped_by_relay(5)


async def test_chats_at_once_count_per_account_across_addresses(
    make_app: MakeApp, make_browser: MakeBrowser, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_app(signup="open", max_chats_per_client=1, behind_proxy=True)
    home = make_browser(client, {"X-Forwarded-For": "198.51.100.1"})
    office = make_browser(client, {"X-Forwarded-For": "198.51.100.2"})
    other = make_browser(client, {"X-Forwarded-For": "198.51.100.3"})
    await home.sign_up("ann@example.org")
    await office.sign_in("ann@example.org")
    fake_openrouter.script(HANG, sse_reply(["fine"]))
    async with home.session.ws_connect(home.url + "/api/chat/ws") as ws:
        await ws.send_str(chat_frame("one"))
        assert (await receive(ws))["content"] == "started"
        async with office.session.post(office.url + "/api/chat/openrouter", json=chat_body()) as r:
            assert r.status == 429
        async with other.session.post(other.url + "/api/chat/openrouter", json=chat_body()) as r:
            assert r.status == 200 and await r.text() == "fine"
        await ws.send_str('{"type": "cancel", "id": "one"}')
        assert (await until_end(ws, "one"))[-1]["finish_reason"] == "cancelled"


async def test_the_chats_log_line_names_the_account(
    make_app: MakeApp, make_browser: MakeBrowser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_app()
    ann = make_browser(client)
    account_id = (await ann.sign_up("ann@example.org"))["id"]
    async with ann.session.ws_connect(ann.url + "/api/chat/ws") as ws:
        await ws.send_str(chat_frame("c1", "Hi there"))
        assert text_of(await until_end(ws, "c1")) == "Hi there"
    async with ann.session.post(ann.url + "/api/chat/openrouter", json=chat_body()) as r:
        assert await r.text() == "Hello"
    ends = [r for r in caplog.records if getattr(r, "transport", None) in ("ws", "http")]
    assert [getattr(r, "account", None) for r in ends] == [account_id, account_id]
    assert "ann@example.org" not in caplog.text and SERVER_KEY not in caplog.text


async def test_a_token_opens_the_websocket_as_its_account(
    make_app: MakeApp, make_browser: MakeBrowser, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_app(accounts="required")
    ann = make_browser(client)
    await ann.sign_up("ann@example.org")
    token = (await ann.make_token())["token"]
    script = make_browser(client, {"Authorization": f"Bearer {token}"})
    fake_openrouter.script(HANG)
    async with script.session.ws_connect(script.url + "/api/chat/ws") as ws:
        await ws.send_str(chat_frame("from-script"))
        assert (await receive(ws))["content"] == "started"
    # The account's browser follows the script's chat, and stops it.
    async with ann.session.ws_connect(ann.url + "/api/chat/ws") as ws:
        await ws.send_str(resume_frame("from-script", 0))
        assert (await receive(ws))["content"] == "started"
        await ws.send_str('{"type": "cancel", "id": "from-script"}')
        assert (await until_end(ws, "from-script"))[-1]["finish_reason"] == "cancelled"
    nobody = make_browser(client)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await nobody.session.ws_connect(nobody.url + "/api/chat/ws")
    assert refused.value.status == 401
