"""SPEC "Accounts" read to the letter, from outside: every route's answer shape, status and
message, and every bad body a 400 that names its field (an outside audit's probes)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tests.account_clients import NEW_PASSWORD, PASSWORD, Browser, bearer
from tests.accounts.conftest import MakeApp, MakeBrowser

ACCOUNT_FIELDS = {"id", "email", "name", "admin", "created_at"}
ADMIN_FIELDS = {"id", "email", "name", "admin", "disabled", "created_at", "last_seen_at", "budget"}
BUDGET_FIELDS = {"limit_usd", "spent_usd", "reserved_usd", "period", "resets_at"}
SIGNED_IN = "/api/account"
NEW = {"email": "new@example.org", "password": PASSWORD}


def expires_in(link: dict[str, Any]) -> datetime.timedelta:
    expires = datetime.datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    return expires - datetime.datetime.now(datetime.UTC)


async def admin_and_member(
    make_app: MakeApp, make_browser: MakeBrowser, **overrides: Any
) -> tuple[Browser, Browser, str]:
    client = await make_app(signup="open", **overrides)
    admin, member = make_browser(client), make_browser(client)
    await admin.sign_up("admin@example.org")
    member_id = (await member.sign_up("member@example.org"))["id"]
    return admin, member, member_id


async def test_every_answer_has_the_specs_shape(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    admin, member, member_id = await admin_and_member(make_app, make_browser)
    status, data, response = await member.call("GET", "/api/session")
    assert status == 200 and response.content_type == "application/json"
    assert set(data) == {"account", "budget"} and set(data["account"]) == ACCOUNT_FIELDS
    assert set(data["budget"]) == BUDGET_FIELDS and data["budget"]["limit_usd"] is None
    status, data, _ = await member.call("PUT", SIGNED_IN, {"name": "Mem"})
    assert status == 200 and set(data) == {"account"} and data["account"]["name"] == "Mem"
    status, data, _ = await member.call("POST", "/api/tokens", {"name": "cli"})
    assert status == 201 and set(data) == {"id", "name", "token"}
    assert data["token"].startswith("crt_")
    status, data, _ = await admin.call("GET", "/api/admin/accounts")
    assert status == 200 and set(data) == {"data"} and len(data["data"]) == 2
    for item in data["data"]:
        assert set(item) == ADMIN_FIELDS, item
        assert isinstance(item["disabled"], bool) and set(item["budget"]) == BUDGET_FIELDS
    status, data, _ = await admin.call("PATCH", f"/api/admin/accounts/{member_id}", {})
    assert status == 200 and data["id"] == member_id
    status, data, _ = await admin.call("POST", "/api/admin/invites")
    assert status == 201 and set(data) == {"url", "expires_at"} and "?invite=" in data["url"]
    assert abs(expires_in(data) - datetime.timedelta(days=7)) < datetime.timedelta(minutes=5)
    status, data, _ = await admin.call("POST", f"/api/admin/accounts/{member_id}/reset")
    assert status == 201 and set(data) == {"url", "expires_at"} and "?reset=" in data["url"]
    assert abs(expires_in(data) - datetime.timedelta(days=1)) < datetime.timedelta(minutes=5)
    status, data, _ = await admin.call("GET", "/api/admin/spend")
    assert (status, data) == (200, {"data": []})
    status, data, _ = await member.call("DELETE", "/api/session")
    assert (status, data) == (204, None)
    status, data, _ = await member.call("GET", "/api/session")
    assert data == {"account": None, "budget": None}


BAD_BODIES: list[tuple[str, str, Any, str]] = [
    # route, path, body (bytes: as sent), the field the 400 names ("" : any 400)
    ("POST", "/api/accounts", b"not json", ""),
    ("POST", "/api/accounts", b"[]", ""),
    ("POST", "/api/accounts", b"", ""),
    ("POST", "/api/accounts", {"email": 5, "password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"email": "a" * 243 + "@example.org", "password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"email": "no-at-sign", "password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"email": "a@b", "password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"email": "a b@example.org", "password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"email": "@example.org", "password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"email": "a@@example.org", "password": PASSWORD}, "email"),
    ("POST", "/api/accounts", {"email": "new@example.org", "password": "x" * 9}, "password"),
    ("POST", "/api/accounts", {"email": "new@example.org", "password": "x" * 257}, "password"),
    ("POST", "/api/accounts", {"email": "new@example.org", "password": 1234567890}, "password"),
    ("POST", "/api/accounts", {**NEW, "name": 5}, "name"),
    ("POST", "/api/accounts", {**NEW, "invite": 5}, "invite"),
    ("POST", "/api/session", b"not json", ""),
    ("POST", "/api/session", b'"text"', ""),
    ("POST", "/api/session", {"email": 5, "password": PASSWORD}, "email"),
    ("POST", "/api/session", {"email": "member@example.org"}, "password"),
    ("PUT", SIGNED_IN, b"not json", ""),
    ("PUT", SIGNED_IN, b"[]", ""),
    ("PUT", SIGNED_IN, {"name": 5}, "name"),
    ("PUT", SIGNED_IN, {"password": PASSWORD, "new_password": "x" * 9}, "new_password"),
    ("PUT", SIGNED_IN, {"password": PASSWORD, "new_password": "x" * 257}, "new_password"),
    ("PUT", SIGNED_IN, {"password": PASSWORD, "new_password": 5}, "new_password"),
    ("PUT", SIGNED_IN, {"password": 5, "new_password": NEW_PASSWORD}, "password"),
    ("PUT", SIGNED_IN, {"new_password": NEW_PASSWORD}, "password"),
    ("DELETE", SIGNED_IN, b"not json", ""),
    ("DELETE", SIGNED_IN, b"", ""),
    ("DELETE", SIGNED_IN, {"password": 5}, "password"),
    ("POST", "/api/tokens", b"not json", ""),
    ("POST", "/api/tokens", {}, "name"),
    ("POST", "/api/tokens", {"name": 5}, "name"),
    ("POST", "/api/account/reset", b"[]", ""),
    ("POST", "/api/account/reset", {"token": 5, "password": PASSWORD}, "token"),
    ("POST", "/api/account/reset", {"token": "t", "password": "x" * 9}, "password"),
    ("POST", "/api/admin/invites", b"not json", ""),
    ("POST", "/api/admin/invites", b"[]", ""),
    ("POST", "/api/admin/invites", {"email": "nope"}, "email"),
    ("POST", "/api/admin/invites", {"email": 5}, "email"),
    ("PATCH", "/api/admin/accounts/{member}", b"not json", ""),
    ("PATCH", "/api/admin/accounts/{member}", b"[]", ""),
    ("PATCH", "/api/admin/accounts/{member}", {"disabled": "yes"}, "disabled"),
    ("PATCH", "/api/admin/accounts/{member}", {"admin": 1}, "admin"),
    ("PATCH", "/api/admin/accounts/{member}", {"budget_usd": -1}, "budget_usd"),
    ("PATCH", "/api/admin/accounts/{member}", {"budget_usd": "ten"}, "budget_usd"),
    ("PATCH", "/api/admin/accounts/{member}", b'{"budget_usd": 1e400}', "budget_usd"),
    ("PATCH", "/api/admin/accounts/{member}", {"budget_usd": True}, "budget_usd"),
]


async def test_every_route_answers_a_bad_body_with_a_400_naming_the_field(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    admin, member, member_id = await admin_and_member(make_app, make_browser)
    failures = []
    for method, path, body, field in BAD_BODIES:
        caller = admin if "/admin/" in path else member
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        status, data, response = await caller.call(
            method, path.replace("{member}", member_id), **kwargs
        )
        ok = (
            status == 400
            and response.content_type == "application/json"
            and set(data or {}) == {"message"}
            and (not field or data["message"].split()[0].strip(":.,") == field)
        )
        if not ok:
            failures.append((method, path, body if len(str(body)) < 80 else "long", status, data))
    assert not failures, "\n".join(map(str, failures))
    # Nothing of it changed the account: its password still signs in.
    again = Browser(member.url)
    try:
        await again.sign_in("MEMBER@example.org")
    finally:
        await again.close()


async def test_lengths_at_the_limits_are_accepted(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(signup="open")
    email = "a" * 242 + "@example.org"
    assert len(email) == 254
    made = await make_browser(client).sign_up(email, password="p" * 10)
    assert made["email"] == email
    await make_browser(client).sign_up("long@example.org", password="p" * 256)
    await make_browser(client).sign_in("long@example.org", "p" * 256)
    status, data, _ = await make_browser(client).call(
        "POST", "/api/session", {"email": "long@example.org", "password": "p" * 257}
    )
    assert (status, data) == (401, {"message": "Wrong email or password"})


async def test_emails_compare_without_case_everywhere(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app()  # SIGNUP=invite
    admin = make_browser(client)
    await admin.sign_up("Admin@Example.ORG")
    await make_browser(client).sign_in("admin@example.org")
    invite = await admin.invite("Guest@Example.org")
    guest = make_browser(client)
    taken = {"email": "ADMIN@example.org", "password": PASSWORD, "invite": invite}
    status, data, _ = await guest.call("POST", "/api/accounts", taken)
    assert (status, data) == (409, {"message": "An account with this email exists"})
    assert (await guest.sign_up("guest@EXAMPLE.org", invite=invite))["admin"] is False


async def test_the_sign_in_limit_answers_429_with_retry_after(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    _, member, _ = await admin_and_member(make_app, make_browser)
    stranger = Browser(member.url)
    try:
        wrong = {"email": "Member@example.org", "password": "wrong password"}
        for _ in range(10):
            status, data, _ = await stranger.call("POST", "/api/session", wrong)
            assert (status, data) == (401, {"message": "Wrong email or password"})
        status, data, response = await stranger.call(
            "POST", "/api/session", {"email": "member@example.org", "password": PASSWORD}
        )
        assert status == 429 and set(data) == {"message"}
        assert int(response.headers["Retry-After"]) > 0
    finally:
        await stranger.close()


async def test_another_accounts_ids_are_the_same_404_as_unknown_ones(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    admin, member, member_id = await admin_and_member(make_app, make_browser)
    token = (await admin.make_token())["id"]
    status, mine, _ = await member.call("DELETE", f"/api/tokens/{token}")
    status_unknown, unknown, _ = await member.call("DELETE", f"/api/tokens/{'0' * len(token)}")
    assert (status, status_unknown) == (404, 404)
    assert mine["message"].replace(token, "") == unknown["message"].replace("0" * len(token), "")
    for method, path in (
        ("GET", "/api/admin/accounts"),
        ("GET", "/api/admin/spend"),
        ("POST", "/api/admin/invites"),
        ("PATCH", f"/api/admin/accounts/{member_id}"),
        ("POST", f"/api/admin/accounts/{member_id}/reset"),
    ):
        status, data, _ = await member.call(method, path, {} if method == "PATCH" else None)
        assert status == 403 and set(data) == {"message"}, (path, status, data)
    status, data, _ = await admin.call("POST", "/api/admin/accounts/nobody/reset")
    assert status == 404 and set(data) == {"message"}


async def test_the_reset_link_sets_a_password_with_204(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    admin, member, member_id = await admin_and_member(make_app, make_browser)
    status, data, _ = await admin.call("POST", f"/api/admin/accounts/{member_id}/reset")
    token = data["url"].rpartition("reset=")[2]
    anyone = Browser(member.url)
    try:
        status, data, _ = await anyone.call(
            "POST", "/api/account/reset", {"token": token, "password": NEW_PASSWORD}
        )
        assert (status, data) == (204, None)
        assert await member.account() is None
        await anyone.sign_in("member@example.org", NEW_PASSWORD)
    finally:
        await anyone.close()


@pytest.mark.parametrize("signup", ["closed", "invite"])
async def test_sign_up_refusals_per_signup(
    make_app: MakeApp, make_browser: MakeBrowser, signup: str
) -> None:
    client = await make_app(signup=signup)
    await make_browser(client).sign_up("first@example.org")
    status, data, _ = await make_browser(client).call(
        "POST", "/api/accounts", {"email": "second@example.org", "password": PASSWORD}
    )
    message = "Sign-up is closed" if signup == "closed" else "An invite is required"
    assert (status, data) == (403, {"message": message})
    status, data, _ = await make_browser(client).call(
        "POST", "/api/accounts", {"email": "FIRST@example.org", "password": PASSWORD}
    )
    assert status in (403, 409)


async def test_the_first_account_with_an_access_token(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(access_token="t" * 40, accounts="required")
    status, data, _ = await make_browser(client).call("GET", "/api/session")
    assert (status, data) == (200, {"account": None, "budget": None})
    status, data, _ = await make_browser(client).call(
        "POST", "/api/accounts", {"email": "owner@example.org", "password": PASSWORD}
    )
    assert status == 401 and set(data) == {"message"}
    owner = make_browser(client, bearer("t" * 40))
    assert (await owner.sign_up("owner@example.org"))["admin"] is True
