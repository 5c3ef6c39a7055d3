"""Accounts across real processes: a second `python -m server` on the same PostgreSQL sees
a disabled account, a revoked token and a password change on its very next request."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.account_clients import NEW_PASSWORD, PASSWORD, Browser, bearer
from tests.accounts.conftest import MakeBrowser
from tests.conftest import SESSION_SECRET, MakeClient
from tests.fake_openrouter import FakeOpenRouter
from tests.postgres_server import PostgresServer
from tests.server_process import server_env, start_server, stop_server

pytestmark = pytest.mark.subprocess


async def test_a_second_process_sees_disabling_revoking_and_password_changes_at_once(
    postgres_server: PostgresServer,
    make_client: MakeClient,
    make_browser: MakeBrowser,
    fake_openrouter: FakeOpenRouter,
    unused_tcp_port: int,
    tmp_path: Path,
) -> None:
    database_url = postgres_server.create_database()
    client = await make_client(database_url=database_url, signup="open")
    admin, member = make_browser(client), make_browser(client)
    await admin.sign_up("admin@example.org")
    member_id = (await member.sign_up("member@example.org"))["id"]
    token = (await member.make_token())["token"]
    env = server_env(
        DATABASE_URL=database_url,
        SESSION_SECRET=SESSION_SECRET,
        DATA_DIR=str(tmp_path / "second"),
        OPENROUTER_BASE_URL=fake_openrouter.url,
    )
    process, url = await start_server(env, unused_tcp_port)
    browser, script = Browser(url), Browser(url, bearer(token))
    try:
        browser.set_cookies(member.cookies())
        assert (await browser.account() or {}).get("id") == member_id
        assert (await script.account() or {}).get("id") == member_id
        path = f"/api/admin/accounts/{member_id}"
        assert (await admin.call("PATCH", path, {"disabled": True}))[0] == 200
        assert await browser.account() is None
        assert await script.account() is None
        assert (await admin.call("PATCH", path, {"disabled": False}))[0] == 200
        assert (await script.account() or {}).get("id") == member_id
        tokens = (await member.call("GET", "/api/tokens"))[1]["data"]
        assert (await member.call("DELETE", f"/api/tokens/{tokens[0]['id']}"))[0] == 204
        assert (await script.call("GET", "/api/tokens"))[0] == 401
        await browser.sign_in("member@example.org")
        change = {"password": PASSWORD, "new_password": NEW_PASSWORD}
        assert (await member.call("PUT", "/api/account", change))[0] == 200
        assert await browser.account() is None
        await browser.sign_in("member@example.org", NEW_PASSWORD)
    finally:
        await browser.close()
        await script.close()
        assert await stop_server(process) == 0
