"""SPEC "What is logged" read to the letter, from outside: the account routes, used and
misused, write no email, password, personal token, invite or reset token at INFO."""

from __future__ import annotations

import logging

import pytest

from tests.account_clients import NEW_PASSWORD, PASSWORD, Browser, bearer
from tests.accounts.conftest import MakeApp, MakeBrowser

USER_KEY = "sk-or-v1-a-users-own-key-0123456789"


async def test_no_email_password_or_token_reaches_the_log(
    make_app: MakeApp, make_browser: MakeBrowser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_app()
    admin = make_browser(client)
    admin_id = (await admin.sign_up("Admin.Person@example.org"))["id"]
    invite = await admin.invite("guest.person@example.org")
    guest = make_browser(client)
    await guest.sign_up("guest.person@example.org", invite=invite)
    await make_browser(client).call(
        "POST", "/api/session", {"email": "guest.person@example.org", "password": "wrong-secret-pw"}
    )
    await make_browser(client).call(
        "POST", "/api/accounts", {"email": "bad email@x", "password": "short-pw"}
    )
    token = (await guest.make_token())["token"]
    script = make_browser(client, bearer(token))
    await script.call("PUT", "/api/profile", {"openrouter_api_key": USER_KEY})
    await script.call("GET", "/v1/models")
    _, reset, _ = await admin.call("POST", f"/api/admin/accounts/{admin_id}/reset")
    reset_token = reset["url"].rpartition("reset=")[2]
    anyone = Browser(admin.url)
    try:
        await anyone.call(
            "POST", "/api/account/reset", {"token": reset_token, "password": NEW_PASSWORD}
        )
    finally:
        await anyone.close()
    await guest.call("PUT", "/api/account", {"password": PASSWORD, "new_password": NEW_PASSWORD})
    text = caplog.text
    assert caplog.records, "nothing was logged at all: the probe saw nothing"
    for secret in (
        "admin.person",
        "guest.person",
        "bad email",
        PASSWORD,
        NEW_PASSWORD,
        "wrong-secret-pw",
        "short-pw",
        token,
        token[4:],
        invite,
        reset_token,
        USER_KEY,
    ):
        assert secret.lower() not in text.lower(), secret
