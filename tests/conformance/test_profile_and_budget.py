"""SPEC "The shared profile" and "Budgets" read to the letter, from outside: a signed-in
account's key is the profile's with source "account"; the budget in GET /api/session; the
only account may delete itself."""

from __future__ import annotations

import datetime

from tests.account_clients import PASSWORD
from tests.accounts.conftest import MakeApp, MakeBrowser

PROFILE_FIELDS = {"openrouter_api_key_set", "source", "hint"}


async def test_a_signed_in_accounts_key_is_the_profiles_with_source_account(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(openrouter_api_key=None)
    ann = make_browser(client)
    await ann.sign_up("ann@example.org")
    status, data, _ = await ann.call("GET", "/api/profile")
    assert (status, data) == (200, {"openrouter_api_key_set": False, "source": None, "hint": None})
    status, data, _ = await ann.call(
        "PUT", "/api/profile", {"openrouter_api_key": "sk-or-ann-1234"}
    )
    assert (status, data) == (
        200,
        {"openrouter_api_key_set": True, "source": "account", "hint": "…1234"},
    )
    laptop = make_browser(client)
    await laptop.sign_in("ANN@example.org")
    status, data, _ = await laptop.call("GET", "/api/profile")
    assert data == {"openrouter_api_key_set": True, "source": "account", "hint": "…1234"}
    status, data, _ = await laptop.call("PUT", "/api/profile", {"openrouter_api_key": ""})
    assert (status, data) == (200, {"openrouter_api_key_set": False, "source": None, "hint": None})
    status, data, _ = await ann.call(
        "PUT", "/api/profile", {"openrouter_api_key": "sk-or-ann-5678"}
    )
    status, data, _ = await ann.call("DELETE", "/api/profile")
    assert (status, data) == (200, {"openrouter_api_key_set": False, "source": None, "hint": None})
    status, data, _ = await ann.call("PUT", "/api/profile", {"openrouter_api_key": 5})
    assert status == 400 and data["message"].startswith("openrouter_api_key")


async def test_the_budget_in_the_session_has_the_specs_shape(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app(default_budget_usd=5.0, budget_period="week")
    ann = make_browser(client)
    await ann.sign_up("ann@example.org")
    status, data, _ = await ann.call("GET", "/api/session")
    assert status == 200
    budget = data["budget"]
    assert set(budget) == {"limit_usd", "spent_usd", "reserved_usd", "period", "resets_at"}
    assert budget["limit_usd"] == 5 and budget["spent_usd"] == 0 and budget["reserved_usd"] == 0
    assert budget["period"] == "week" and budget["resets_at"].endswith("T00:00:00Z")
    resets = datetime.datetime.fromisoformat(budget["resets_at"].replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.UTC)
    # A week starts on Monday (UTC): the next Monday's midnight, within the coming 7 days.
    assert resets.weekday() == 0 and now < resets <= now + datetime.timedelta(days=7)
    for name in ("limit_usd", "spent_usd", "reserved_usd"):
        assert isinstance(budget[name], int | float) and not isinstance(budget[name], bool)


async def test_the_only_account_may_delete_itself_and_the_next_is_the_admin(
    make_app: MakeApp, make_browser: MakeBrowser
) -> None:
    client = await make_app()
    only = make_browser(client)
    await only.sign_up("only@example.org")
    status, data, _ = await only.call("DELETE", "/api/account", {"password": PASSWORD})
    assert (status, data) == (204, None)
    assert await only.account() is None
    assert (await make_browser(client).sign_up("next@example.org"))["admin"] is True
