"""The account routes (SPEC "Accounts"): sign up, sign in and out, the account itself, a
password reset's second half, and personal tokens. The data logic is server/users/'s;
here: the body's fields, the session cookie, the sign-in limit.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_session import get_session, new_session

from server.config import settings_key
from server.errors import AccessDenied, BadRequest, Forbidden, NotFound, TooManyChats
from server.users import accounts as stored
from server.users import links, sessions
from server.users.credentials import digest, hash_password, verify_password
from server.users.db import database_key
from server.web.access import ACCESS_FIELD, holds_access_token
from server.web.fields import email_field, json_object, name_field, password_field, string_field
from server.web.http_io import expect_within_limit, json_response, read_json
from server.web.identity import (
    ACCOUNT_SESSION_FIELD,
    Identity,
    budget_view_key,
    key_box_key,
    request_identity,
    signed_in,
)
from server.web.limits import client_address, sign_in_wait
from server.web.profile import SESSION_KEY_FIELD, SESSION_OWNER_FIELD

# Longest password checked at sign-in: longer ones match no account (sign-up's limit).
MAX_PASSWORD_CHARS = 256


async def account_answer(
    request: web.Request, account: stored.Account, status: int = 200
) -> web.Response:
    return json_response({"account": account.public()}, status=status)


async def begin_session(request: web.Request, account: stored.Account) -> None:
    """Sign the browser in with a new session identity: a cookie planted before cannot
    ride on it. Its chats and access stay; a key it held moves to the account when the
    account has none."""
    old = await get_session(request)
    kept = {f: old[f] for f in (SESSION_OWNER_FIELD, ACCESS_FIELD) if f in old}
    saved_key = old.get(SESSION_KEY_FIELD)
    previous = old.get(ACCOUNT_SESSION_FIELD)
    db = request.app[database_key]
    async with db.transaction() as connection:
        session_id = await sessions.open_session(
            connection, account.id, previous if isinstance(previous, str) else None
        )
        moved = False
        if isinstance(saved_key, str) and saved_key:
            sealed = request.app[key_box_key].seal(saved_key)
            moved = await stored.adopt_key(connection, account.id, sealed)
    if isinstance(saved_key, str) and saved_key and not moved:
        kept[SESSION_KEY_FIELD] = saved_key
    session = await new_session(request)
    session.update(kept)
    session[ACCOUNT_SESSION_FIELD] = session_id


async def create_account(request: web.Request) -> web.Response:
    data = json_object(await read_json(request))
    form_email = email_field(data, "email")
    password = password_field(data, "password")
    name = name_field(data, "name")
    invite = string_field(data, "invite", optional=True)
    settings = request.app[settings_key]
    may_claim = settings.access_token is None or await holds_access_token(request, settings)
    form = stored.SignUp(form_email, await hash_password(password), name, invite)
    async with request.app[database_key].transaction() as connection:
        account = await stored.create_account(
            connection, form, signup=settings.signup, may_claim_server=may_claim
        )
    await begin_session(request, account)
    return await account_answer(request, account, status=201)


async def sign_in(request: web.Request) -> web.Response:
    data = json_object(await read_json(request))
    email = string_field(data, "email")
    password = string_field(data, "password")
    limit_keys = [
        "email:" + digest(stored.email_key(email))[:32],
        "addr:" + client_address(request),
    ]
    await refuse_when_limited(request, limit_keys, failed=False)
    async with request.app[database_key].transaction(write=False) as connection:
        found = await stored.sign_in_row(connection, email)
    # An unknown email is checked against a dummy hash: answered alike, in the same time.
    matched = (
        await verify_password(found[1] if found else None, password[:MAX_PASSWORD_CHARS])
        and len(password) <= MAX_PASSWORD_CHARS
    )
    if found is None or not matched:
        await refuse_when_limited(request, limit_keys, failed=True)
        raise AccessDenied("Wrong email or password")
    account = found[0]
    if account.disabled:
        raise Forbidden("This account is disabled")
    await begin_session(request, account)
    return await account_answer(request, account)


async def refuse_when_limited(request: web.Request, keys: list[str], *, failed: bool) -> None:
    wait = await sign_in_wait(keys, request, failed=failed)
    if wait is not None:
        raise TooManyChats(f"Too many sign-in attempts; try again in {wait} s", retry_after=wait)


async def sign_out(request: web.Request) -> web.Response:
    session = await get_session(request)
    session_id = session.pop(ACCOUNT_SESSION_FIELD, None)
    if isinstance(session_id, str):
        async with request.app[database_key].transaction() as connection:
            await sessions.end_session(connection, session_id)
    return web.Response(status=204)


async def get_session_route(request: web.Request) -> web.Response:
    identity = await request_identity(request)
    if identity is None:
        return json_response({"account": None, "budget": None})
    budget = await request.app[budget_view_key](request, identity.account)
    return json_response({"account": identity.account.public(), "budget": budget})


async def update_account(request: web.Request) -> web.Response:
    identity = await signed_in(request)
    data = json_object(await read_json(request))
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = name_field(data, "name")
    if data.get("new_password") is not None:
        new_password = password_field(data, "new_password")
        await check_password(request, identity, string_field(data, "password"))
        changes["password_hash"] = await hash_password(new_password)
    async with request.app[database_key].transaction() as connection:
        account = await stored.update_account(connection, identity.account.id, **changes)
        if "password_hash" in changes:
            # Every other session ends: whoever held one may not know the new password.
            await sessions.end_other_sessions(connection, account.id, identity.session_id)
    return await account_answer(request, account)


async def check_password(request: web.Request, identity: Identity, password: str) -> None:
    async with request.app[database_key].transaction(write=False) as connection:
        stored_hash = await stored.password_hash_of(connection, identity.account.id)
    if not await verify_password(stored_hash, password[:MAX_PASSWORD_CHARS]):
        raise Forbidden("Wrong password")


async def delete_account(request: web.Request) -> web.Response:
    identity = await signed_in(request)
    data = json_object(await read_json(request))
    await check_password(request, identity, string_field(data, "password"))
    async with request.app[database_key].transaction() as connection:
        await stored.delete_account(connection, identity.account)
    (await get_session(request)).pop(ACCOUNT_SESSION_FIELD, None)
    return web.Response(status=204)


async def reset_password(request: web.Request) -> web.Response:
    data = json_object(await read_json(request))
    token = string_field(data, "token")
    password_hash = await hash_password(password_field(data, "password"))
    async with request.app[database_key].transaction() as connection:
        account_id = await links.use_reset(connection, token, password_hash)
    if account_id is None:
        raise BadRequest("token is not a valid reset link: unknown, used or expired")
    return web.Response(status=204)


async def list_tokens(request: web.Request) -> web.Response:
    identity = await signed_in(request)
    async with request.app[database_key].transaction(write=False) as connection:
        data = await sessions.list_tokens(connection, identity.account.id)
    return json_response({"data": data})


async def create_token(request: web.Request) -> web.Response:
    identity = await signed_in(request)
    data = json_object(await read_json(request))
    name = name_field(data, "name", optional=False)
    async with request.app[database_key].transaction() as connection:
        made = await sessions.create_token(connection, identity.account.id, name)
    return json_response(made, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    identity = await signed_in(request)
    token_id = request.match_info["token_id"]
    async with request.app[database_key].transaction() as connection:
        revoked = await sessions.revoke_token(connection, identity.account.id, token_id)
    if not revoked:
        raise NotFound(f"No token with id {token_id}")
    return web.Response(status=204)


def setup_accounts(app: web.Application) -> None:
    app.router.add_post("/api/accounts", create_account, expect_handler=expect_within_limit)
    app.router.add_post("/api/session", sign_in, expect_handler=expect_within_limit)
    app.router.add_get("/api/session", get_session_route)
    app.router.add_delete("/api/session", sign_out, expect_handler=expect_within_limit)
    app.router.add_put("/api/account", update_account, expect_handler=expect_within_limit)
    app.router.add_delete("/api/account", delete_account, expect_handler=expect_within_limit)
    app.router.add_post("/api/account/reset", reset_password, expect_handler=expect_within_limit)
    app.router.add_get("/api/tokens", list_tokens)
    app.router.add_post("/api/tokens", create_token, expect_handler=expect_within_limit)
    app.router.add_delete("/api/tokens/{token_id}", revoke_token)
