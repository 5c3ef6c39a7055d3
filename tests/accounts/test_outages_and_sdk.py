"""Accounts under faults and from scripts: the database stopped and started mid-use (account
routes 503, anonymous chats and /healthz go on, back without a restart), a personal token
in the real `openai` SDK revoked mid-use, and a disabled account's running chat ended."""

from __future__ import annotations

import logging
from typing import Any

import openai
import pytest
from aiohttp import WSMsgType

from tests.accounts.conftest import MakeApp, MakeBrowser
from tests.clients import chat_frame, receive, until_end
from tests.conftest import USER_KEY, MakeClient, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event
from tests.integration.openai_sdk import messages, sdk_for
from tests.postgres_server import PostgresServer
from tests.waiting import wait_until

HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])
UNAVAILABLE = {"message": "Account store unavailable"}


async def test_the_database_stopped_and_started_mid_use(
    make_postgres_server: Any,
    make_client: MakeClient,
    make_browser: MakeBrowser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "server.users.db")
    database: PostgresServer = make_postgres_server()
    client = await make_client(database_url=database.create_database())
    ann, anonymous = make_browser(client), make_browser(client)
    await ann.sign_up("ann@example.org")
    await ann.call("PUT", "/api/profile", {"openrouter_api_key": USER_KEY})
    database.stop()
    for method, path in (("GET", "/api/session"), ("GET", "/api/tokens"), ("GET", "/api/profile")):
        assert (await ann.call(method, path))[:2] == (503, UNAVAILABLE), path
    # Nobody without an account notices.
    status, data, _ = await anonymous.call("GET", "/api/session")
    assert (status, data) == (200, {"account": None, "budget": None})
    async with anonymous.session.post(
        anonymous.url + "/api/chat/openrouter", json=chat_body()
    ) as r:
        assert r.status == 200 and await r.text() == "Hello"
    assert (await anonymous.call("GET", "/healthz"))[0] == 200
    status, data, _ = await make_browser(client).call(
        "POST", "/api/session", {"email": "ann@example.org", "password": "whatever it is"}
    )
    assert (status, data) == (503, UNAVAILABLE)
    database.start()

    async def signed_in_again() -> bool:
        status, data, _ = await ann.call("GET", "/api/session")
        return status == 200 and data["account"] is not None

    await wait_until(signed_in_again, "the account is back after the database", timeout_s=20)
    assert (await ann.call("GET", "/api/profile"))[1]["source"] == "account"
    # One warning for the outage, not one per refused request, and one line when it is back.
    lines = [r.getMessage() for r in caplog.records if r.name == "server.users.db"]
    assert len([m for m in lines if m.startswith("database unavailable")]) == 1, lines
    assert len([m for m in lines if m.startswith("database is back")]) == 1, lines


async def test_a_personal_token_in_the_openai_sdk_revoked_mid_use(
    make_client: MakeClient, make_browser: MakeBrowser, fake_openrouter: FakeOpenRouter
) -> None:
    client = await make_client(access_token="owner-token-0123456789")
    owner = make_browser(client, {"Authorization": "Bearer owner-token-0123456789"})
    await owner.sign_up("owner@example.org")
    await owner.call("PUT", "/api/profile", {"openrouter_api_key": USER_KEY})
    made = await owner.make_token("sdk")
    async with sdk_for(client, api_key=made["token"]) as sdk:
        answer = await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=messages())
        assert answer.choices[0].message.content == "Hello"
        # The account's key went upstream, never the token.
        assert fake_openrouter.requests[-1].headers["Authorization"] == f"Bearer {USER_KEY}"
        stream = await sdk.chat.completions.create(
            model="openai/gpt-4o-mini", messages=messages("one two three"), stream=True
        )
        first = await anext(aiter(stream))
        assert first is not None
        assert (await owner.call("DELETE", f"/api/tokens/{made['id']}"))[0] == 204
        rest = [c async for c in stream]  # a chat already admitted finishes
        assert rest
        with pytest.raises(openai.AuthenticationError):
            await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=messages())
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.list()
    assert len(fake_openrouter.requests) == 2


async def test_a_disabled_accounts_running_chat_on_another_process_ends_with_403(
    make_app: MakeApp, make_browser: MakeBrowser, fake_openrouter: FakeOpenRouter
) -> None:
    one, two = await make_app(signup="open"), await make_app(signup="open")
    admin, member = make_browser(one), make_browser(one)
    await admin.sign_up("admin@example.org")
    member_id = (await member.sign_up("member@example.org"))["id"]
    on_two = make_browser(two)
    on_two.set_cookies(member.cookies())
    fake_openrouter.script(HANG)
    async with on_two.session.ws_connect(on_two.url + "/api/chat/ws") as ws:
        await ws.send_str(chat_frame("long"))
        assert (await receive(ws))["content"] == "started"
        status, _, _ = await admin.call(
            "PATCH", f"/api/admin/accounts/{member_id}", {"disabled": True}
        )
        assert status == 200
        # Process two learns it from the database within about a second.
        frames = await until_end(ws, "long", timeout_s=10)
        assert frames[-1]["type"] == "error" and frames[-1]["status"] == 403
        closed = await ws.receive(timeout=10)
        assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), closed
    await fake_openrouter.requests[0].wait_dropped_by_relay(5)
