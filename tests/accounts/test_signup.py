"""Creating accounts (SPEC "Accounts"): the first is the admin, SIGNUP's modes, invites,
emails without case, and every bad field a 400 that names it; on both engines."""

from __future__ import annotations

import pytest

from tests.account_clients import PASSWORD, bearer
from tests.accounts.conftest import MakeApp, MakeBrowser

ACCESS_TOKEN = "s3cret-access-token-for-the-owner"


async def test_the_first_account_is_the_admin_and_is_signed_in(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app()
    owner = make_browser(client)
    assert await owner.account() is None
    made = await owner.sign_up("Owner@Example.org", name="Owner")
    assert made["admin"] is True and made["email"] == "Owner@Example.org"
    assert set(made) == {"id", "email", "name", "admin", "created_at"}
    assert made["name"] == "Owner" and made["created_at"].endswith("Z")
    status, data, _ = await owner.call("GET", "/api/session")
    assert status == 200 and data["account"] == made and "budget" in data
    # The second one is not an admin (SIGNUP=open here).
    open_client = await make_app(signup="open")
    second = await make_browser(open_client).sign_up("second@example.org")
    assert second["admin"] is False


async def test_with_an_access_token_the_first_account_needs_it(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(access_token=ACCESS_TOKEN)
    stranger = make_browser(client)
    status, data, _ = await stranger.call(
        "POST", "/api/accounts", {"email": "me@example.org", "password": PASSWORD}
    )
    assert (status, data) == (401, {"message": "Access token required"})
    owner = make_browser(client, bearer(ACCESS_TOKEN))
    assert (await owner.sign_up("owner@example.org"))["admin"] is True


async def test_invite_mode_needs_an_admins_one_time_invite(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app()  # SIGNUP defaults to invite
    admin = make_browser(client)
    await admin.sign_up("admin@example.org")
    guest = make_browser(client)
    body = {"email": "guest@example.org", "password": PASSWORD}
    status, data, _ = await guest.call("POST", "/api/accounts", body)
    assert (status, data) == (403, {"message": "An invite is required"})
    status, data, _ = await admin.call("POST", "/api/admin/invites", {})
    assert status == 201 and "?invite=" in data["url"] and data["expires_at"].endswith("Z")
    invite = data["url"].rpartition("invite=")[2]
    assert (await guest.sign_up("guest@example.org", invite=invite))["admin"] is False
    # One time only.
    other = make_browser(client)
    status, data, _ = await other.call(
        "POST",
        "/api/accounts",
        {"email": "other@example.org", "password": PASSWORD, "invite": invite},
    )
    assert (status, data) == (403, {"message": "An invite is required"})
    # An invite for one email serves that email only.
    named = await admin.invite("named@example.org")
    status, data, _ = await other.call(
        "POST",
        "/api/accounts",
        {"email": "other@example.org", "password": PASSWORD, "invite": named},
    )
    assert (status, data) == (403, {"message": "An invite is required"})
    assert (await other.sign_up("NAMED@example.org", invite=named))["email"] == "NAMED@example.org"


async def test_closed_and_open_sign_up(make_app: MakeApp, make_browser: MakeBrowser) -> None:
    closed = await make_app(signup="closed")
    await make_browser(closed).sign_up("admin@example.org")  # the first always may
    status, data, _ = await make_browser(closed).call(
        "POST", "/api/accounts", {"email": "late@example.org", "password": PASSWORD}
    )
    assert (status, data) == (403, {"message": "Sign-up is closed"})
    opened = await make_app(signup="open")
    assert (await make_browser(opened).sign_up("late@example.org"))["admin"] is False


async def test_emails_are_one_account_whatever_their_case(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(signup="open")
    await make_browser(client).sign_up("Ann@X.org")
    status, data, _ = await make_browser(client).call(
        "POST", "/api/accounts", {"email": "ann@x.ORG", "password": PASSWORD}
    )
    assert (status, data) == (409, {"message": "An account with this email exists"})
    assert (await make_browser(client).sign_in("ANN@x.org"))["email"] == "Ann@X.org"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "no-at-sign", "password": PASSWORD}, "email"),
        ({"email": "a@b", "password": PASSWORD}, "email"),
        ({"email": "a b@c.org", "password": PASSWORD}, "email"),
        ({"email": "x" * 250 + "@c.org", "password": PASSWORD}, "email"),
        ({"email": 7, "password": PASSWORD}, "email"),
        ({"email": "a@c.org"}, "password"),
        ({"email": "a@c.org", "password": "short"}, "password"),
        ({"email": "a@c.org", "password": "p" * 257}, "password"),
        ({"email": "a@c.org", "password": ["x"] * 12}, "password"),
        ({"email": "a@c.org", "password": PASSWORD, "name": 5}, "name"),
        ({"email": "a@c.org", "password": PASSWORD, "name": "n" * 101}, "name"),
        ({"email": "a@c.org", "password": PASSWORD, "invite": 5}, "invite"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it(
    make_app: MakeApp, make_browser: MakeBrowser, body: dict[str, object], field: str
) -> None:
    client = await make_app()
    status, data, _ = await make_browser(client).call("POST", "/api/accounts", body)
    assert status == 400 and data["message"].startswith(field), data
    status, data, _ = await make_browser(client).call("POST", "/api/accounts", data=b"[1]")
    assert status == 400
