"""Signing in and out, the account's own changes and resets (SPEC "Accounts"), on both
engines: a wrong password and an unknown email alike, the sign-in limit, a new session
identity, password changes ending the other sessions, deletion and the last admin."""

from __future__ import annotations

import time

from tests.account_clients import NEW_PASSWORD, PASSWORD, Browser
from tests.accounts.conftest import MakeApp, MakeBrowser

WRONG = {"message": "Wrong email or password"}


async def admin_and_member(
    make_app: MakeApp, make_browser: MakeBrowser, **overrides: object
) -> tuple[Browser, Browser]:
    client = await make_app(signup="open", **overrides)
    admin, member = make_browser(client), make_browser(client)
    await admin.sign_up("admin@example.org")
    await member.sign_up("member@example.org")
    return admin, member


async def test_a_wrong_password_and_an_unknown_email_are_answered_alike(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    _, member = await admin_and_member(make_app, make_browser)
    stranger = Browser(member.url)
    timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
    for _ in range(3):
        for kind, email in (("wrong", "member@example.org"), ("unknown", "nobody@example.org")):
            started = time.perf_counter()
            status, data, _ = await stranger.call(
                "POST", "/api/session", {"email": email, "password": "not the password"}
            )
            timings[kind].append(time.perf_counter() - started)
            assert (status, data) == (401, WRONG)
    # An unknown email is checked against a hash too: not answered in a fraction of the time
    # (a generous bound: a wrong password costs an Argon2id hash, tens of milliseconds).
    assert min(timings["unknown"]) > 0.3 * min(timings["wrong"]), timings
    assert await stranger.account() is None
    await stranger.close()


async def test_ten_failures_a_minute_for_one_email_or_one_address_get_429(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    _, member = await admin_and_member(make_app, make_browser)
    attacker = Browser(member.url)
    try:
        body = {"email": "member@example.org", "password": "guess"}
        for _ in range(10):
            status, _, _ = await attacker.call("POST", "/api/session", body)
            assert status == 401
        # Now even the right password is refused, with the wait.
        body["password"] = PASSWORD
        status, data, response = await attacker.call("POST", "/api/session", body)
        assert status == 429 and int(response.headers["Retry-After"]) >= 1, data
        # And the address is spent for every email.
        status, _, _ = await attacker.call(
            "POST", "/api/session", {"email": "admin@example.org", "password": PASSWORD}
        )
        assert status == 429
    finally:
        await attacker.close()


async def test_signing_in_gives_a_new_session_identity_and_signing_out_ends_it(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    _, member = await admin_and_member(make_app, make_browser)
    await member.call("DELETE", "/api/session")
    assert await member.account() is None
    planted = member.cookies()  # a cookie from before the sign-in, as an attacker plants it
    await member.sign_in("member@example.org")
    signed_in = member.cookies()
    assert signed_in != planted
    replayer = Browser(member.url)
    try:
        replayer.set_cookies(planted)
        assert await replayer.account() is None
        # A copy of the signed-in cookie works until the sign-out, never after.
        replayer.set_cookies(signed_in)
        assert (await replayer.account() or {}).get("email") == "member@example.org"
        status, _, _ = await member.call("DELETE", "/api/session")
        assert status == 204
        assert await member.account() is None
        assert await replayer.account() is None
        # Signing in again over a signed-in session ends the one it replaces.
        await member.sign_in("member@example.org")
        replayer.set_cookies(member.cookies())
        await member.sign_in("member@example.org")
        assert await member.account() is not None
        assert await replayer.account() is None
    finally:
        await replayer.close()


async def test_a_password_change_needs_the_current_one_and_ends_every_other_session(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    _, member = await admin_and_member(make_app, make_browser)
    laptop = Browser(member.url)
    try:
        await laptop.sign_in("member@example.org")
        token = (await member.make_token())["token"]
        status, data, _ = await member.call(
            "PUT", "/api/account", {"password": "not it at all", "new_password": NEW_PASSWORD}
        )
        assert (status, data) == (403, {"message": "Wrong password"})
        status, data, _ = await member.call(
            "PUT", "/api/account", {"password": PASSWORD, "new_password": "short"}
        )
        assert status == 400 and data["message"].startswith("new_password")
        status, data, _ = await member.call(
            "PUT",
            "/api/account",
            {"name": "Member", "password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert status == 200 and data["account"]["name"] == "Member"
        assert (await member.account() or {}).get("name") == "Member"  # this one stays
        assert await laptop.account() is None  # every other one ended
        status, _, _ = await laptop.call(
            "POST", "/api/session", {"email": "member@example.org", "password": PASSWORD}
        )
        assert status == 401
        await laptop.sign_in("member@example.org", NEW_PASSWORD)
        # A personal token is not a session: it goes on.
        async with member.session.get(
            member.url + "/api/session", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert (await response.json())["account"]["email"] == "member@example.org"
    finally:
        await laptop.close()


async def test_deleting_the_account_needs_its_password_and_takes_its_tokens(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    admin, member = await admin_and_member(make_app, make_browser)
    token = (await member.make_token())["token"]
    status, _, _ = await member.call("DELETE", "/api/account", {"password": "wrong password!"})
    assert status == 403
    status, _, _ = await member.call("DELETE", "/api/account", {"password": PASSWORD})
    assert status == 204
    assert await member.account() is None
    status, _, _ = await member.call(
        "GET", "/api/tokens", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 401
    status, _, _ = await member.call(
        "POST", "/api/session", {"email": "member@example.org", "password": PASSWORD}
    )
    assert status == 401
    # The last admin cannot go while other accounts remain; the only account can (the next
    # sign-up is the first again, an admin).
    third, fresh = Browser(admin.url), Browser(admin.url)
    try:
        await third.sign_up("third@example.org")
        status, data, _ = await admin.call("DELETE", "/api/account", {"password": PASSWORD})
        assert (status, data) == (409, {"message": "The last admin cannot be removed"})
        status, _, _ = await third.call("DELETE", "/api/account", {"password": PASSWORD})
        assert status == 204
        status, _, _ = await admin.call("DELETE", "/api/account", {"password": PASSWORD})
        assert status == 204
        assert (await fresh.sign_up("next@example.org"))["admin"] is True
    finally:
        await third.close()
        await fresh.close()


async def test_an_admins_reset_link_sets_a_new_password_once_and_ends_every_session(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    admin, member = await admin_and_member(make_app, make_browser)
    member_id = (await member.account() or {})["id"]
    status, data, _ = await member.call("POST", f"/api/admin/accounts/{member_id}/reset")
    assert status == 403  # not an admin
    status, data, _ = await admin.call("POST", f"/api/admin/accounts/{member_id}/reset")
    assert status == 201 and "?reset=" in data["url"] and data["expires_at"].endswith("Z")
    token = data["url"].rpartition("reset=")[2]
    stranger = Browser(member.url)
    try:
        body = {"token": token, "password": "short"}
        status, data, _ = await stranger.call("POST", "/api/account/reset", body)
        assert status == 400 and data["message"].startswith("password")
        body["password"] = NEW_PASSWORD
        status, _, _ = await stranger.call("POST", "/api/account/reset", body)
        assert status == 204
        assert await member.account() is None  # every session of the account ended
        await stranger.sign_in("member@example.org", NEW_PASSWORD)
        status, data, _ = await stranger.call("POST", "/api/account/reset", body)
        assert status == 400 and data["message"].startswith("token")
        status, _, _ = await admin.call("POST", "/api/admin/accounts/no-such-id/reset")
        assert status == 404
    finally:
        await stranger.close()


async def test_sign_in_failures_are_counted_across_processes_through_redis(
    make_app: MakeApp, make_browser: MakeBrowser, redis_url: str
) -> None:
    one, two = await make_app(redis_url=redis_url), await make_app(redis_url=redis_url)
    await make_browser(one).sign_up("admin@example.org")
    guesses = [make_browser(one), make_browser(two)]
    body = {"email": "admin@example.org", "password": "a wrong guess"}
    for attempt in range(10):
        status, _, _ = await guesses[attempt % 2].call("POST", "/api/session", body)
        assert status == 401
    for guesser in guesses:
        status, _, response = await guesser.call(
            "POST", "/api/session", {**body, "password": PASSWORD}
        )
        assert status == 429 and int(response.headers["Retry-After"]) >= 1
