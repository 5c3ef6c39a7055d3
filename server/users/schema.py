"""The database's tables, on one `metadata` that every feature's tables join.

History, sync and budgets define their own tables in their own modules on this `metadata`
(and add their own Alembic revisions in `server/users/migrations/versions/`). Every table
that holds something of an account carries `account_id`, and every query filters on it.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

# Constraint names fixed by convention: migrations (SQLite's batch mode above all) can then
# name the constraint they change, the same on both engines.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID_CHARS = 32
EMAIL_CHARS = 254
NAME_CHARS = 100
HASH_CHARS = 64  # a SHA-256 hex digest


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """An aware UTC datetime on both engines: SQLite keeps no zone, so it is stored as UTC
    and given back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


accounts = Table(
    "accounts",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    # As typed, for showing; `email_key` (lower case) is what is unique and looked up.
    Column("email", String(EMAIL_CHARS), nullable=False),
    Column("email_key", String(EMAIL_CHARS), nullable=False, unique=True),
    Column("name", String(NAME_CHARS), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # The admin's budget for this account per BUDGET_PERIOD (Budgets); None: the default.
    Column("budget_usd", Float, nullable=True),
    # The account's OpenRouter key, a Fernet token under a key derived from SESSION_SECRET.
    Column("openrouter_key", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=True),
)

# A signed-in browser session: the cookie holds a random id, this table its SHA-256, so
# signing out, a password change or a reset ends it on every process.
account_sessions = Table(
    "account_sessions",
    metadata,
    Column("id", String(HASH_CHARS), primary_key=True),
    Column(
        "account_id",
        String(ID_CHARS),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
)

# Personal tokens (crt_…): kept as their SHA-256 only, shown once when made.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    Column(
        "account_id",
        String(ID_CHARS),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(NAME_CHARS), nullable=False),
    Column("token_hash", String(HASH_CHARS), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
)

# An admin's one-time sign-up link (for one email, when given).
invites = Table(
    "invites",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    Column("token_hash", String(HASH_CHARS), nullable=False, unique=True),
    Column("email_key", String(EMAIL_CHARS), nullable=True),
    Column(
        "created_by",
        String(ID_CHARS),
        ForeignKey("accounts.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)

# An admin's one-time link to set a new password for an account.
resets = Table(
    "resets",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    Column(
        "account_id",
        String(ID_CHARS),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("token_hash", String(HASH_CHARS), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)
