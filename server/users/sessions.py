"""Who a request is: a signed-in session (the cookie holds a random id, the database its
digest) or a personal token (`crt_…`, kept as its digest). Looked up in the database on
every request that carries one, so signing out, a password change, a disabled account or a
revoked token take effect at once on every process.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.accounts import ACCOUNT_COLUMNS, Account, iso
from server.users.credentials import PERSONAL_TOKEN_PREFIX, digest, new_id, new_token
from server.users.schema import account_sessions, accounts, tokens, utc_now

# last_seen_at / last_used_at are written at most this often: not a write per request.
SEEN_EVERY = datetime.timedelta(minutes=1)
# As long as the session cookie lives (server/app.py SESSION_MAX_AGE_S).
SESSION_LIFETIME = datetime.timedelta(days=30)


async def open_session(db: AsyncConnection, account_id: str, replaces: str | None = None) -> str:
    """A new signed-in session of the account; its id, for the cookie only. The session the
    browser held (`replaces`) ends, and so do the account's sessions unseen for longer than
    a cookie lives: no row outlives the cookie that could use it."""
    session_id, now = new_token(), utc_now()
    if replaces is not None:
        await end_session(db, replaces)
    await db.execute(
        sa.delete(account_sessions).where(
            account_sessions.c.account_id == account_id,
            account_sessions.c.last_seen_at < now - SESSION_LIFETIME,
        )
    )
    await db.execute(
        sa.insert(account_sessions).values(
            id=digest(session_id), account_id=account_id, created_at=now, last_seen_at=now
        )
    )
    await db.execute(
        sa.update(accounts).where(accounts.c.id == account_id).values(last_seen_at=now)
    )
    return session_id


async def end_session(db: AsyncConnection, session_id: str) -> None:
    await db.execute(sa.delete(account_sessions).where(account_sessions.c.id == digest(session_id)))


async def end_other_sessions(db: AsyncConnection, account_id: str, keep: str | None) -> None:
    """Every session of the account but `keep` (the one changing its password)."""
    query = sa.delete(account_sessions).where(account_sessions.c.account_id == account_id)
    if keep is not None:
        query = query.where(account_sessions.c.id != digest(keep))
    await db.execute(query)


@dataclass(frozen=True, slots=True)
class Seen:
    """A session or token last marked as used over a minute ago: `mark_seen` writes it."""

    account_id: str
    session_digest: str | None = None
    token_id: str | None = None


def is_stale(moment: datetime.datetime | None) -> bool:
    return moment is None or utc_now() - moment > SEEN_EVERY


# An account found, and its session or token when it is due to be marked as seen.
Found = tuple[Account, Seen | None]


async def session_account(db: AsyncConnection, session_id: str) -> Found | None:
    """The enabled account signed in with this session id, else None (a read only)."""
    return (await sessions_accounts(db, [digest(session_id)])).get(digest(session_id))


async def sessions_accounts(db: AsyncConnection, digests: list[str]) -> dict[str, Found]:
    """The enabled accounts signed in with these sessions (by digest), in one statement."""
    rows = await db.execute(
        sa.select(
            *ACCOUNT_COLUMNS,
            account_sessions.c.id.label("session_digest"),
            account_sessions.c.last_seen_at.label("session_seen"),
        )
        .join(account_sessions, account_sessions.c.account_id == accounts.c.id)
        .where(account_sessions.c.id.in_(digests), sa.not_(accounts.c.disabled))
    )
    found: dict[str, Found] = {}
    for row in rows:
        seen = row.session_digest
        stale = Seen(row.id, session_digest=seen) if is_stale(row.session_seen) else None
        found[seen] = (Account.from_row(row), stale)
    return found


async def token_account(db: AsyncConnection, token: str) -> Found | None:
    """The enabled account whose personal token this is, else None (a read only)."""
    return (await tokens_accounts(db, [digest(token)])).get(digest(token))


async def tokens_accounts(db: AsyncConnection, digests: list[str]) -> dict[str, Found]:
    """The enabled accounts of these personal tokens (by digest), in one statement."""
    rows = await db.execute(
        sa.select(
            *ACCOUNT_COLUMNS,
            tokens.c.id.label("token_id"),
            tokens.c.token_hash,
            tokens.c.last_used_at.label("token_used"),
        )
        .join(tokens, tokens.c.account_id == accounts.c.id)
        .where(tokens.c.token_hash.in_(digests), sa.not_(accounts.c.disabled))
    )
    found: dict[str, Found] = {}
    for row in rows:
        stale = Seen(row.id, token_id=row.token_id) if is_stale(row.token_used) else None
        found[row.token_hash] = (Account.from_row(row), stale)
    return found


async def mark_seen(db: AsyncConnection, seen: Seen) -> None:
    now = utc_now()
    if seen.session_digest is not None:
        await db.execute(
            sa.update(account_sessions)
            .where(
                account_sessions.c.id == seen.session_digest,
                account_sessions.c.account_id == seen.account_id,
            )
            .values(last_seen_at=now)
        )
    if seen.token_id is not None:
        await db.execute(
            sa.update(tokens)
            .where(tokens.c.id == seen.token_id, tokens.c.account_id == seen.account_id)
            .values(last_used_at=now)
        )
    await db.execute(
        sa.update(accounts).where(accounts.c.id == seen.account_id).values(last_seen_at=now)
    )


def token_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
    }


async def create_token(db: AsyncConnection, account_id: str, name: str) -> dict[str, Any]:
    """A new personal token: `{"id", "name", "token"}`, the token shown this once."""
    token, token_id = new_token(PERSONAL_TOKEN_PREFIX), new_id()
    await db.execute(
        sa.insert(tokens).values(
            id=token_id,
            account_id=account_id,
            name=name,
            token_hash=digest(token),
            created_at=utc_now(),
        )
    )
    return {"id": token_id, "name": name, "token": token}


async def list_tokens(db: AsyncConnection, account_id: str) -> list[dict[str, Any]]:
    rows = await db.execute(
        sa.select(tokens.c.id, tokens.c.name, tokens.c.created_at, tokens.c.last_used_at)
        .where(tokens.c.account_id == account_id)
        .order_by(tokens.c.created_at)
    )
    return [token_view(row) for row in rows]


async def revoke_token(db: AsyncConnection, account_id: str, token_id: str) -> bool:
    """False when the account has no token with that id (another's included)."""
    gone = await db.execute(
        sa.delete(tokens).where(tokens.c.account_id == account_id, tokens.c.id == token_id)
    )
    return gone.rowcount == 1


@dataclass(frozen=True, slots=True)
class StillValid:
    accounts: set[str]
    session_digests: set[str]
    token_digests: set[str]


async def still_valid(
    db: AsyncConnection,
    account_ids: set[str],
    session_digests: set[str],
    token_digests: set[str],
) -> StillValid:
    """Which of these accounts exist and are enabled, and which sessions and tokens are
    still there: what this process's chats and sockets were admitted with."""
    enabled = await db.execute(
        sa.select(accounts.c.id).where(accounts.c.id.in_(account_ids), sa.not_(accounts.c.disabled))
    )
    live_sessions = await db.execute(
        sa.select(account_sessions.c.id).where(account_sessions.c.id.in_(session_digests))
    )
    live_tokens = await db.execute(
        sa.select(tokens.c.token_hash).where(tokens.c.token_hash.in_(token_digests))
    )
    return StillValid(
        set(enabled.scalars()), set(live_sessions.scalars()), set(live_tokens.scalars())
    )
