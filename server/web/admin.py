"""The admin's routes (SPEC "Accounts", admins): the accounts, disabling, admin rights and
budgets, invites and password resets. Everyone else gets 403 here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.config import settings_key
from server.errors import NotFound
from server.users import accounts as stored
from server.users import links
from server.users.db import database_key
from server.web.fields import dollars_field, email_field, flag_field, json_object
from server.web.http_io import expect_within_limit, json_response, read_json
from server.web.identity import budget_view_key, signed_in_admin
from server.web.revocation import end_chats_of


def page_url(request: web.Request, parameter: str, token: str) -> str:
    """A link to the page carrying `token`: APP_URL's when set, else this request's origin."""
    base = request.app[settings_key].app_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}/?{parameter}={token}"


async def admin_view(request: web.Request, account: stored.Account) -> dict[str, Any]:
    budget = await request.app[budget_view_key](request, account)
    return {**account.admin_view(), "budget": budget}


async def list_accounts(request: web.Request) -> web.Response:
    await signed_in_admin(request)
    async with request.app[database_key].transaction(write=False) as connection:
        found = await stored.list_accounts(connection)
    return json_response({"data": [await admin_view(request, account) for account in found]})


async def change_account(request: web.Request) -> web.Response:
    await signed_in_admin(request)
    account_id = request.match_info["account_id"]
    data = json_object(await read_json(request))
    changes: dict[str, Any] = {}
    for name in ("disabled", "admin"):
        if name in data:
            changes[name] = flag_field(data, name)
    if "budget_usd" in data:
        changes["budget_usd"] = dollars_field(data, "budget_usd")
    async with request.app[database_key].transaction() as connection:
        account = await stored.change_by_admin(connection, account_id, changes)
    if account.disabled:
        # Here at once; other processes' within a second (server/web/revocation.py).
        end_chats_of(request.app, {account.id})
    return json_response(await admin_view(request, account))


async def create_invite(request: web.Request) -> web.Response:
    identity = await signed_in_admin(request)
    body = await read_json(request) if request.can_read_body else {}
    data = json_object(body)
    email = email_field(data, "email", optional=True)
    key = None if email is None else stored.email_key(email)
    async with request.app[database_key].transaction() as connection:
        token, expires_at = await links.create_invite(connection, identity.account.id, key)
    answer = {"url": page_url(request, "invite", token), "expires_at": stored.iso(expires_at)}
    return json_response(answer, status=201)


async def create_reset(request: web.Request) -> web.Response:
    await signed_in_admin(request)
    account_id = request.match_info["account_id"]
    async with request.app[database_key].transaction() as connection:
        if await stored.account_by_id(connection, account_id) is None:
            raise NotFound(f"No account with id {account_id}")
        token, expires_at = await links.create_reset(connection, account_id)
    answer = {"url": page_url(request, "reset", token), "expires_at": stored.iso(expires_at)}
    return json_response(answer, status=201)


def setup_admin(app: web.Application) -> None:
    app.router.add_get("/api/admin/accounts", list_accounts)
    app.router.add_patch(
        "/api/admin/accounts/{account_id}", change_account, expect_handler=expect_within_limit
    )
    app.router.add_post("/api/admin/invites", create_invite, expect_handler=expect_within_limit)
    app.router.add_post(
        "/api/admin/accounts/{account_id}/reset", create_reset, expect_handler=expect_within_limit
    )
