"""Accounts: the row, sign-up (the first account is the admin), changes, deletion and the
admin's view. Every query names the account it touches; emails compare in lower case.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import AccessDenied, Conflict, Forbidden, NotFound
from server.users.credentials import new_id
from server.users.links import take_invite
from server.users.schema import accounts, utc_now

# pg_advisory_xact_lock's key for sign-ups: two first sign-ups at once make one admin.
SIGNUP_LOCK_KEY = int.from_bytes(b"signup..", "big")
EMAIL_TAKEN = "An account with this email exists"
LAST_ADMIN = "The last admin cannot be removed"
INVITE_REQUIRED = "An invite is required"


def iso(moment: datetime.datetime | None) -> str | None:
    """An instant as the API writes it: ISO 8601 in UTC, to the second."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def email_key(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    name: str | None
    admin: bool
    disabled: bool
    budget_usd: float | None
    # A Fernet token (credentials.KeyBox), never the key itself.
    sealed_key: str | None
    created_at: datetime.datetime
    last_seen_at: datetime.datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Account:
        """From a row holding ACCOUNT_COLUMNS (and maybe more)."""
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            admin=bool(row.admin),
            disabled=bool(row.disabled),
            budget_usd=row.budget_usd,
            sealed_key=row.openrouter_key,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
        )

    def public(self) -> dict[str, Any]:
        """What the account itself sees (GET /api/session)."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "admin": self.admin,
            "created_at": iso(self.created_at),
        }

    def admin_view(self) -> dict[str, Any]:
        """What an admin sees of it (the budget is added by the route): SPEC's fields only,
        its own `budget_usd` being the budget's `limit_usd` when set."""
        return {
            **self.public(),
            "disabled": self.disabled,
            "last_seen_at": iso(self.last_seen_at),
        }


ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.email,
    accounts.c.name,
    accounts.c.admin,
    accounts.c.disabled,
    accounts.c.budget_usd,
    accounts.c.openrouter_key,
    accounts.c.created_at,
    accounts.c.last_seen_at,
)


async def account_by_id(db: AsyncConnection, account_id: str) -> Account | None:
    row = (
        await db.execute(sa.select(*ACCOUNT_COLUMNS).where(accounts.c.id == account_id))
    ).one_or_none()
    return None if row is None else Account.from_row(row)


async def sign_in_row(db: AsyncConnection, email: str) -> tuple[Account, str] | None:
    """The account of `email` and its password hash, to check a sign-in against."""
    row = (
        await db.execute(
            sa.select(*ACCOUNT_COLUMNS, accounts.c.password_hash).where(
                accounts.c.email_key == email_key(email)
            )
        )
    ).one_or_none()
    return None if row is None else (Account.from_row(row), row.password_hash)


async def password_hash_of(db: AsyncConnection, account_id: str) -> str | None:
    query = sa.select(accounts.c.password_hash).where(accounts.c.id == account_id)
    return (await db.execute(query)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class SignUp:
    email: str
    password_hash: str
    name: str | None
    invite: str | None


async def lock_signups(db: AsyncConnection) -> None:
    # SQLite's BEGIN IMMEDIATE already serializes writers; PostgreSQL needs a lock, or two
    # sign-ups on an empty server could both count zero accounts and both be admins.
    if db.dialect.name == "postgresql":
        await db.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SIGNUP_LOCK_KEY})


async def create_account(
    db: AsyncConnection, form: SignUp, *, signup: str, may_claim_server: bool
) -> Account:
    """A new account; the first one is the admin and needs `may_claim_server` (the
    ACCESS_TOKEN, when one is set). Forbidden per SIGNUP, Conflict for a taken email."""
    await lock_signups(db)
    first = (await db.execute(sa.select(accounts.c.id).limit(1))).first() is None
    if first and not may_claim_server:
        # Nobody but the owner claims a fresh public server.
        raise AccessDenied("Access token required")
    if not first and signup == "closed":
        raise Forbidden("Sign-up is closed")
    key = email_key(form.email)
    taken = await db.execute(sa.select(accounts.c.id).where(accounts.c.email_key == key))
    if taken.first() is not None:
        raise Conflict(EMAIL_TAKEN)
    # SPEC's one message for every refusal of SIGNUP=invite: none, used, expired or another's.
    if (
        not first
        and signup == "invite"
        and (form.invite is None or not await take_invite(db, form.invite, key))
    ):
        raise Forbidden(INVITE_REQUIRED)
    account_id = new_id()
    values: dict[str, Any] = {
        "id": account_id,
        "email": form.email.strip(),
        "email_key": key,
        "name": form.name,
        "password_hash": form.password_hash,
        "admin": first,
        "disabled": False,
        "created_at": utc_now(),
    }
    try:
        await db.execute(sa.insert(accounts).values(**values))
    except IntegrityError:
        raise Conflict(EMAIL_TAKEN) from None
    made = await account_by_id(db, account_id)
    assert made is not None
    return made


async def update_account(db: AsyncConnection, account_id: str, **values: Any) -> Account:
    """Set columns of the account (name, password_hash, openrouter_key, ...)."""
    if values:
        await db.execute(sa.update(accounts).where(accounts.c.id == account_id).values(**values))
    account = await account_by_id(db, account_id)
    if account is None:
        raise NotFound(f"No account with id {account_id}")
    return account


async def adopt_key(db: AsyncConnection, account_id: str, sealed: str) -> bool:
    """The session's key becomes the account's, unless the account has one already."""
    adopted = await db.execute(
        sa.update(accounts)
        .where(accounts.c.id == account_id, accounts.c.openrouter_key.is_(None))
        .values(openrouter_key=sealed)
    )
    return adopted.rowcount == 1


async def other_admins(db: AsyncConnection, account_id: str) -> int:
    """Admins, enabled, other than this account: at least one must remain."""
    query = (
        sa.select(sa.func.count())
        .select_from(accounts)
        .where(accounts.c.admin, sa.not_(accounts.c.disabled), accounts.c.id != account_id)
    )
    return int((await db.execute(query)).scalar_one())


async def others(db: AsyncConnection, account_id: str) -> bool:
    """Whether any account but this one exists."""
    query = sa.select(accounts.c.id).where(accounts.c.id != account_id).limit(1)
    return (await db.execute(query)).first() is not None


async def delete_account(db: AsyncConnection, account: Account) -> None:
    """Delete it with everything it owns (foreign keys cascade); never the last admin of
    other accounts. The only account may go: the next sign-up is the first, an admin again."""
    if account.admin and await other_admins(db, account.id) == 0 and await others(db, account.id):
        raise Conflict(LAST_ADMIN)
    await db.execute(sa.delete(accounts).where(accounts.c.id == account.id))


async def list_accounts(db: AsyncConnection) -> list[Account]:
    rows = await db.execute(sa.select(*ACCOUNT_COLUMNS).order_by(accounts.c.created_at))
    return [Account.from_row(row) for row in rows]


async def change_by_admin(db: AsyncConnection, account_id: str, changes: dict[str, Any]) -> Account:
    """An admin's PATCH (disabled, admin, budget_usd); NotFound, or Conflict when it would
    leave no enabled admin."""
    account = await account_by_id(db, account_id)
    if account is None:
        raise NotFound(f"No account with id {account_id}")
    demoted = changes.get("admin") is False or changes.get("disabled") is True
    if (
        account.admin
        and not account.disabled
        and demoted
        and not await other_admins(db, account_id)
    ):
        raise Conflict(LAST_ADMIN)
    return await update_account(db, account_id, **changes)


async def touch(db: AsyncConnection, account_id: str) -> None:
    await db.execute(
        sa.update(accounts).where(accounts.c.id == account_id).values(last_seen_at=utc_now())
    )
