"""Who is calling, when it is an account: the signed-in session of the cookie, or a personal
token (`Authorization: Bearer crt_…`), looked up once per request and kept on it.

Only requests that carry one reach the database: anonymous chats never do. A session whose
row is gone (signed out, a password changed, a reset) or whose account is disabled is no
account any more, on every process, from the next request on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from server.config import settings_key
from server.errors import AccessDenied, Forbidden
from server.users.accounts import Account
from server.users.credentials import KeyBox, digest, is_personal_token
from server.users.db import database_key
from server.users.lookups import Lookups
from server.users.sessions import Found, Seen, mark_seen, sessions_accounts, tokens_accounts

# The session cookie's field holding the signed-in session's random id.
ACCOUNT_SESSION_FIELD = "account_session"


@dataclass(frozen=True, slots=True)
class Identity:
    """The signed-in account, and how: `session_id` for a browser's session, None for a
    personal token."""

    account: Account
    session_id: str | None
    # The personal token's digest, for a token (what a watcher checks is still there).
    token_digest: str | None = None

    @property
    def owner(self) -> str:
        """The owner of the account's chats: any of its sessions and tokens (Durable chats)."""
        return account_owner(self.account.id)


def account_owner(account_id: str) -> str:
    return "acct." + account_id


@dataclass(frozen=True, slots=True)
class Caller:
    identity: Identity | None


caller_key = web.RequestKey("caller", Caller)
key_box_key = web.AppKey("key_box", KeyBox)

# Budgets plug their view of an account's budget in here (GET /api/session, the admin's
# list); None until they do.
BudgetView = Callable[[web.Request, Account], Awaitable[dict[str, Any] | None]]
budget_view_key: web.AppKey[BudgetView] = web.AppKey("budget_view")


async def no_budget(request: web.Request, account: Account) -> dict[str, Any] | None:
    return None


def personal_token(request: web.Request) -> str | None:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    token = presented.strip()
    return token if scheme.lower() == "bearer" and is_personal_token(token) else None


async def request_identity(request: web.Request) -> Identity | None:
    """The account this request acts as, or None. AccountStoreUnavailable (503) when it
    carries a session or token and the database cannot be reached to check it."""
    if caller_key in request:
        return request[caller_key].identity
    identity = await resolve_identity(request)
    request[caller_key] = Caller(identity)
    return identity


class IdentityLookups:
    """Sessions and tokens looked up together when asked together (server/users/lookups.py):
    a burst of signed-in chats takes a few queries, not one each."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.kinds: tuple[Lookups[Found], Lookups[Found]] | None = None

    def of(self, kind: int) -> Lookups[Found]:
        if self.kinds is None:  # the database is made at start, after the routes
            db = self.app[database_key]
            self.kinds = (Lookups(db, sessions_accounts), Lookups(db, tokens_accounts))
        return self.kinds[kind]

    async def session(self, session_id: str) -> Found | None:
        return await self.of(0).get(digest(session_id))

    async def token(self, token: str) -> Found | None:
        return await self.of(1).get(digest(token))


identity_lookups_key = web.AppKey("identity_lookups", IdentityLookups)


async def resolve_identity(request: web.Request) -> Identity | None:
    lookups = request.app[identity_lookups_key]
    token = personal_token(request)
    if token is not None:
        found = await lookups.token(token)
        if found is None:
            return None
        await seen(request, found[1])
        return Identity(found[0], None, digest(token))
    session = await get_session(request)
    session_id = session.get(ACCOUNT_SESSION_FIELD)
    if not isinstance(session_id, str):
        return None
    found = await lookups.session(session_id)
    if found is None:
        session.pop(ACCOUNT_SESSION_FIELD, None)
        return None
    await seen(request, found[1])
    return Identity(found[0], session_id)


async def seen(request: web.Request, stale: Seen | None) -> None:
    """Write last_seen_at / last_used_at when the stored one is a minute old."""
    if stale is not None:
        async with request.app[database_key].transaction() as connection:
            await mark_seen(connection, stale)


async def signed_in(request: web.Request) -> Identity:
    """The caller's account, else 401 `Sign in required`."""
    identity = await request_identity(request)
    if identity is None:
        raise AccessDenied("Sign in required")
    return identity


async def signed_in_admin(request: web.Request) -> Identity:
    identity = await signed_in(request)
    if not identity.account.admin:
        raise Forbidden("Only an admin may do this")
    return identity


def setup_identity(app: web.Application) -> None:
    secret = app[settings_key].session_secret
    assert secret is not None, "create_app gives it one"
    app[key_box_key] = KeyBox(secret)
    app[budget_view_key] = no_budget
    app[identity_lookups_key] = IdentityLookups(app)
