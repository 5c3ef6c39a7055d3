"""The budget in sight (SPEC "Budgets"): each account's budget this period in
GET /api/session and the admin's list of accounts, and every account's spend for the last
periods in GET /api/admin/spend."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.users.accounts import Account
from server.web.budget_gate import budget_gate_key
from server.web.http_io import json_response
from server.web.identity import budget_view_key, signed_in_admin

# SPEC: the spend of the last 12 periods.
SPEND_PERIODS = 12


async def budget_view(request: web.Request, account: Account) -> dict[str, Any]:
    """`{"limit_usd", "spent_usd", "reserved_usd", "period", "resets_at"}` this period."""
    standing = await request.app[budget_gate_key].budgets.standing(account.id)
    return standing.view()


async def get_spend(request: web.Request) -> web.Response:
    await signed_in_admin(request)
    spent = await request.app[budget_gate_key].budgets.recent(SPEND_PERIODS)
    return json_response({"data": spent})


def setup_budget_routes(app: web.Application) -> None:
    """After the accounts' routes: the budget replaces their view of none."""
    app[budget_view_key] = budget_view
    app.router.add_get("/api/admin/spend", get_spend)
