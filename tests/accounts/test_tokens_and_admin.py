"""Personal tokens and the admin's routes (SPEC "Accounts"), on both engines: tokens kept
as hashes and shown once, another account's ids answered like unknown ones, non-admins
refused, budgets checked, and a disabled account stopped on every process at once."""

from __future__ import annotations

import pytest

from tests.account_clients import PASSWORD, bearer
from tests.accounts.conftest import MakeApp, MakeBrowser


async def test_a_token_acts_as_its_account_until_revoked_and_another_accounts_id_is_unknown(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(signup="open")
    ann, bob = make_browser(client), make_browser(client)
    await ann.sign_up("ann@example.org")
    await bob.sign_up("bob@example.org")
    made = await ann.make_token("laptop script")
    assert made["token"].startswith("crt_") and made["name"] == "laptop script"
    status, data, _ = await ann.call("GET", "/api/tokens")
    assert status == 200
    assert [set(t) for t in data["data"]] == [{"id", "name", "created_at", "last_used_at"}]
    assert made["token"] not in str(data)
    script = make_browser(client, bearer(made["token"]))
    assert (await script.account() or {}).get("email") == "ann@example.org"
    status, data, _ = await ann.call("GET", "/api/tokens")
    assert data["data"][0]["last_used_at"] is not None
    # Bob cannot see, nor revoke, Ann's token: the same 404 as an unknown id.
    status, data, _ = await bob.call("GET", "/api/tokens")
    assert data == {"data": []}
    status, bob_answer, _ = await bob.call("DELETE", f"/api/tokens/{made['id']}")
    status_unknown, unknown_answer, _ = await bob.call("DELETE", "/api/tokens/nope")
    assert (status, status_unknown) == (404, 404)
    assert bob_answer["message"].replace(made["id"], "X") == unknown_answer["message"].replace(
        "nope", "X"
    )
    assert (await script.account() or {}).get("email") == "ann@example.org"
    status, _, _ = await ann.call("DELETE", f"/api/tokens/{made['id']}")
    assert status == 204
    assert await script.account() is None
    status, data, _ = await script.call("GET", "/api/tokens")
    assert (status, data) == (401, {"message": "Sign in required"})
    status, data, _ = await ann.call("POST", "/api/tokens", {"name": ""})
    assert status == 400 and data["message"].startswith("name")


async def test_admin_routes_are_for_admins_only(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(signup="open")
    admin, member, nobody = make_browser(client), make_browser(client), make_browser(client)
    await admin.sign_up("admin@example.org")
    member_id = (await member.sign_up("member@example.org"))["id"]
    routes = [
        ("GET", "/api/admin/accounts", None),
        ("PATCH", f"/api/admin/accounts/{member_id}", {"disabled": True}),
        ("POST", "/api/admin/invites", {}),
        ("POST", f"/api/admin/accounts/{member_id}/reset", None),
    ]
    for method, path, body in routes:
        assert (await member.call(method, path, body))[0] == 403, path
        assert (await nobody.call(method, path, body))[0] == 401, path
    status, data, _ = await admin.call("GET", "/api/admin/accounts")
    assert status == 200
    keys = {"id", "email", "name", "admin", "disabled", "created_at", "last_seen_at", "budget"}
    assert all(keys <= set(entry) for entry in data["data"])
    assert [e["email"] for e in data["data"]] == ["admin@example.org", "member@example.org"]
    assert not any("password" in str(key) for entry in data["data"] for key in entry)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"budget_usd": -1}, "budget_usd"),
        ({"budget_usd": "5"}, "budget_usd"),
        ({"budget_usd": True}, "budget_usd"),
        ({"disabled": "yes"}, "disabled"),
        ({"admin": 1}, "admin"),
    ],
)
async def test_a_bad_admin_change_is_a_400_naming_its_field(
    make_app: MakeApp, make_browser: MakeBrowser, body: dict[str, object], field: str
) -> None:
    client = await make_app()
    admin = make_browser(client)
    admin_id = (await admin.sign_up("admin@example.org"))["id"]
    status, data, _ = await admin.call("PATCH", f"/api/admin/accounts/{admin_id}", body)
    assert status == 400 and data["message"].startswith(field), data


async def test_budgets_are_set_and_cleared_and_an_infinite_one_refused(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app()
    admin = make_browser(client)
    admin_id = (await admin.sign_up("admin@example.org"))["id"]
    path = f"/api/admin/accounts/{admin_id}"
    status, data, _ = await admin.call("PATCH", path, {"budget_usd": 5})
    assert status == 200 and data["budget"]["limit_usd"] == 5
    status, data, _ = await admin.call("PATCH", path, data=b'{"budget_usd": 1e400}')
    assert status == 400 and data["message"].startswith("budget_usd"), data
    status, data, _ = await admin.call("PATCH", path, {"budget_usd": None})
    assert status == 200 and data["budget"]["limit_usd"] is None
    status, _, _ = await admin.call("PATCH", "/api/admin/accounts/unknown", {"disabled": True})
    assert status == 404


async def test_the_last_admin_cannot_be_removed(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(signup="open")
    admin, other = make_browser(client), make_browser(client)
    admin_id = (await admin.sign_up("admin@example.org"))["id"]
    other_id = (await other.sign_up("other@example.org"))["id"]
    last = {"message": "The last admin cannot be removed"}
    for change in ({"admin": False}, {"disabled": True}):
        status, data, _ = await admin.call("PATCH", f"/api/admin/accounts/{admin_id}", change)
        assert (status, data) == (409, last)
    status, data, _ = await admin.call("PATCH", f"/api/admin/accounts/{other_id}", {"admin": True})
    assert status == 200 and data["admin"] is True
    status, data, _ = await other.call("PATCH", f"/api/admin/accounts/{admin_id}", {"admin": False})
    assert status == 200 and data["admin"] is False


async def test_disabling_and_password_changes_are_seen_by_another_process_at_once(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    one, two = await make_app(signup="open"), await make_app(signup="open")
    admin, member = make_browser(one), make_browser(one)
    await admin.sign_up("admin@example.org")
    member_id = (await member.sign_up("member@example.org"))["id"]
    token = (await member.make_token())["token"]
    # The member's browser and script, now talking to the other process.
    browser_two, script_two = make_browser(two), make_browser(two, bearer(token))
    browser_two.set_cookies(member.cookies())
    assert (await browser_two.account() or {}).get("id") == member_id
    assert (await script_two.account() or {}).get("id") == member_id
    status, data, _ = await admin.call(
        "PATCH", f"/api/admin/accounts/{member_id}", {"disabled": True}
    )
    assert status == 200 and data["disabled"] is True
    assert await browser_two.account() is None
    assert await script_two.account() is None
    status, data, _ = await make_browser(two).call(
        "POST", "/api/session", {"email": "member@example.org", "password": PASSWORD}
    )
    assert (status, data) == (403, {"message": "This account is disabled"})
    await admin.call("PATCH", f"/api/admin/accounts/{member_id}", {"disabled": False})
    await browser_two.sign_in("member@example.org")
    # A password change through one process signs the other process's session out.
    status, _, _ = await member.call(
        "PUT", "/api/account", {"password": PASSWORD, "new_password": "a brand new password"}
    )
    assert status == 200
    assert await browser_two.account() is None


async def test_accounts_required_lets_only_accounts_and_tokens_in(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(accounts="required", access_token="owner-token-0123456789")
    nobody = make_browser(client)
    required = {"message": "Sign in required"}
    for method, path in (("GET", "/api/profile"), ("GET", "/api/models"), ("GET", "/v1/models")):
        status, data, _ = await nobody.call(method, path)
        assert status == 401, path
    assert (await nobody.call("GET", "/api/profile"))[1] == required
    # The doors stay open: asking, signing in and creating (the first needs the token).
    assert (await nobody.call("GET", "/api/session"))[0] == 200
    status, data, _ = await nobody.call(
        "POST", "/api/session", {"email": "a@example.org", "password": PASSWORD}
    )
    assert status == 401 and data == {"message": "Wrong email or password"}
    # The ACCESS_TOKEN alone does not pass: it serves /metrics and the first account.
    owner = make_browser(client, bearer("owner-token-0123456789"))
    assert (await owner.call("GET", "/api/profile"))[0] == 401
    assert (await owner.call("GET", "/metrics"))[0] == 200
    await owner.sign_up("owner@example.org")
    status, data, _ = await owner.call("GET", "/api/profile")
    assert status == 200
    token = (await owner.make_token())["token"]
    script = make_browser(client, bearer(token))
    assert (await script.call("GET", "/api/profile"))[0] == 200
    assert (await script.call("GET", "/v1/models"))[0] == 200


async def test_an_account_passes_the_access_token_rule(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(access_token="owner-token-0123456789")
    owner = make_browser(client, bearer("owner-token-0123456789"))
    await owner.sign_up("owner@example.org")
    invite = await owner.invite()
    guest = make_browser(client)  # knows no access token: the invite admits them
    assert (await guest.call("GET", "/api/profile"))[0] == 401
    await guest.sign_up("guest@example.org", invite=invite)
    assert (await guest.call("GET", "/api/profile"))[0] == 200
    await guest.call("DELETE", "/api/session")
    assert (await guest.call("GET", "/api/profile"))[0] == 401
