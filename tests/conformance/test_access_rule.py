"""SPEC "Access" read to the letter, from outside: accounts and personal tokens pass the
ACCESS_TOKEN rule; with ACCOUNTS=required only they do (401 `Sign in required`), but for
the doors that create or open an account, and the ACCESS_TOKEN then serves /metrics."""

from __future__ import annotations

import aiohttp
import pytest

from tests.account_clients import bearer
from tests.accounts.conftest import MakeApp, MakeBrowser
from tests.conftest import chat_body

ACCESS_TOKEN = "owner-access-token-of-forty-characters!!"
SIGN_IN_REQUIRED = {"message": "Sign in required"}
GUARDED = [
    ("GET", "/api/profile", None),
    ("PUT", "/api/profile", {"openrouter_api_key": "sk-or-mine"}),
    ("GET", "/api/models", None),
    ("POST", "/api/chat/openrouter", chat_body()),
    ("GET", "/api/tokens", None),
    ("GET", "/api/conversations", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize("access_token", [None, ACCESS_TOKEN])
async def test_accounts_required_lets_only_accounts_in(
    make_app: MakeApp, make_browser: MakeBrowser, access_token: str | None
) -> None:
    client = await make_app(accounts="required", access_token=access_token, signup="open")
    anonymous = make_browser(client)
    holder = make_browser(client, bearer(ACCESS_TOKEN))
    for method, path, body in GUARDED:
        status, data, response = await anonymous.call(method, path, body)
        assert (status, data) == (401, SIGN_IN_REQUIRED), (path, status, data)
        assert response.content_type == "application/json"
        if access_token is not None and path != "/metrics":
            status, data, _ = await holder.call(method, path, body)
            assert (status, data) == (401, SIGN_IN_REQUIRED), (path, status, data)
    status, data, _ = await anonymous.call("GET", "/v1/models")
    assert status == 401 and data["error"]["message"] == "Sign in required", data
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await anonymous.session.ws_connect(anonymous.url + "/api/chat/ws")
    assert refused.value.status == 401
    # The page, its files and /healthz stay public; the doors stay open.
    for path in ("/", "/healthz", "/static/app.css"):
        status, _, _ = await anonymous.call("GET", path)
        assert status == 200, (path, status)
    status, data, _ = await anonymous.call("GET", "/api/session")
    assert (status, data) == (200, {"account": None, "budget": None})
    status, data, _ = await anonymous.call(
        "POST", "/api/session", {"email": "x@example.org", "password": "no such password"}
    )
    assert (status, data) == (401, {"message": "Wrong email or password"})
    owner = holder if access_token else anonymous
    await owner.sign_up("owner@example.org")
    token = (await owner.make_token())["token"]
    script = make_browser(client, bearer(token))
    for method, path, _ in GUARDED:
        if method != "GET":
            continue
        status, data, _ = await owner.call(method, path)
        assert status == 200, (path, status, data)
        status, data, _ = await script.call(method, path)
        assert status == 200, (path, status, data)
    if access_token is not None:
        status, _, response = await holder.call("GET", "/metrics")
        assert status == 200 and "chatrelay_spend_usd_total" in await response.text()


async def test_accounts_and_tokens_pass_the_access_token_rule(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(access_token=ACCESS_TOKEN)
    anonymous = make_browser(client)
    status, data, _ = await anonymous.call("GET", "/api/profile")
    assert (status, data) == (401, {"message": "Access token required"})
    owner = make_browser(client, bearer(ACCESS_TOKEN))
    await owner.sign_up("owner@example.org")
    token = (await owner.make_token())["token"]
    # The same browser's cookie, without the token header: the account passes.
    signed_in = make_browser(client)
    await signed_in.sign_in("owner@example.org")
    script = make_browser(client, bearer(token))
    for caller in (signed_in, script):
        for path in ("/api/profile", "/api/models", "/metrics"):
            status, data, _ = await caller.call("GET", path)
            assert status == 200, (path, status, data)
        status, data, _ = await caller.call("GET", "/v1/models")
        assert status == 200 and data["object"] == "list"
    status, data, _ = await make_browser(client, bearer("crt_not-a-token")).call(
        "GET", "/api/profile"
    )
    assert (status, data) == (401, {"message": "Access token required"})


async def test_a_loopback_server_answers_only_names_it_knows(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(allowed_hosts=frozenset({"chat.example.net"}))
    browser = make_browser(client)
    for host, expected in (
        ("evil.example.com", 421),
        ("evil.example.com:8080", 421),
        ("localhost:1234", 200),
        ("127.0.0.1", 200),
        ("[::1]:80", 200),
        ("chat.example.net", 200),
        ("CHAT.example.net:443", 200),
    ):
        for path in ("/api/session", "/healthz", "/"):
            status, _, _ = await browser.call("GET", path, headers={"Host": host})
            assert status == expected, (host, path, status)
    status, _, _ = await browser.call(
        "POST",
        "/api/accounts",
        {"email": "a@example.org", "password": "long enough pass"},
        headers={"Host": "evil.example.com"},
    )
    assert status == 421
