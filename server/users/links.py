"""One-time links an admin hands over: invites to sign up (7 days, for one email when
given) and password resets (1 day). Only their tokens' digests are kept."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.users.credentials import digest, new_id, new_token
from server.users.schema import account_sessions, accounts, invites, resets, utc_now

INVITE_VALID = datetime.timedelta(days=7)
RESET_VALID = datetime.timedelta(days=1)


async def create_invite(
    db: AsyncConnection, created_by: str, email_key: str | None
) -> tuple[str, datetime.datetime]:
    """A new invite's token (shown once) and when it expires."""
    token, now = new_token(), utc_now()
    await db.execute(
        sa.insert(invites).values(
            id=new_id(),
            token_hash=digest(token),
            email_key=email_key,
            created_by=created_by,
            created_at=now,
            expires_at=now + INVITE_VALID,
        )
    )
    return token, now + INVITE_VALID


async def take_invite(db: AsyncConnection, token: str, email_key: str) -> bool:
    """Use the invite for `email_key`, once: False when unknown, used, expired or another's."""
    now = utc_now()
    used = await db.execute(
        sa.update(invites)
        .where(
            invites.c.token_hash == digest(token),
            invites.c.used_at.is_(None),
            invites.c.expires_at > now,
            sa.or_(invites.c.email_key.is_(None), invites.c.email_key == email_key),
        )
        .values(used_at=now)
    )
    return used.rowcount == 1


async def create_reset(db: AsyncConnection, account_id: str) -> tuple[str, datetime.datetime]:
    token, now = new_token(), utc_now()
    await db.execute(
        sa.insert(resets).values(
            id=new_id(),
            account_id=account_id,
            token_hash=digest(token),
            created_at=now,
            expires_at=now + RESET_VALID,
        )
    )
    return token, now + RESET_VALID


async def use_reset(db: AsyncConnection, token: str, password_hash: str) -> str | None:
    """Set the new password of the reset's account, once, and end every session of it;
    the account's id, or None for an unknown, used or expired reset."""
    now = utc_now()
    row = (
        await db.execute(
            sa.select(resets.c.id, resets.c.account_id).where(
                resets.c.token_hash == digest(token),
                resets.c.used_at.is_(None),
                resets.c.expires_at > now,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    taken = await db.execute(
        sa.update(resets)
        .where(resets.c.id == row.id, resets.c.used_at.is_(None))
        .values(used_at=now)
    )
    if taken.rowcount != 1:
        return None
    account_id: str = row.account_id
    await db.execute(
        sa.update(accounts).where(accounts.c.id == account_id).values(password_hash=password_hash)
    )
    await db.execute(sa.delete(account_sessions).where(account_sessions.c.account_id == account_id))
    return account_id
