"""Accounts: the accounts, their signed-in sessions, personal tokens, invites and resets.

Revision ID: 0001_accounts
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.users.schema import UtcDateTime

revision: str = "0001_accounts"
down_revision: str | tuple[str, ...] | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def account_ref(table: str) -> sa.Column[str]:
    """The owner column: its rows go with the account."""
    return sa.Column(
        "account_id",
        sa.String(32),
        sa.ForeignKey("accounts.id", ondelete="CASCADE", name=f"fk_{table}_account_id_accounts"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32)),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_key", sa.String(254), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("budget_usd", sa.Float, nullable=True),
        sa.Column("openrouter_key", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("email_key", name="uq_accounts_email_key"),
    )
    op.create_table(
        "account_sessions",
        sa.Column("id", sa.String(64)),
        account_ref("account_sessions"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_account_sessions"),
    )
    op.create_index("ix_account_sessions_account_id", "account_sessions", ["account_id"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32)),
        account_ref("tokens"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_used_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )
    op.create_index("ix_tokens_account_id", "tokens", ["account_id"])
    op.create_table(
        "invites",
        sa.Column("id", sa.String(32)),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("email_key", sa.String(254), nullable=True),
        sa.Column(
            "created_by",
            sa.String(32),
            sa.ForeignKey(
                "accounts.id", ondelete="SET NULL", name="fk_invites_created_by_accounts"
            ),
            nullable=True,
        ),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_invites"),
        sa.UniqueConstraint("token_hash", name="uq_invites_token_hash"),
    )
    op.create_index("ix_invites_created_by", "invites", ["created_by"])
    op.create_table(
        "resets",
        sa.Column("id", sa.String(32)),
        account_ref("resets"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_resets"),
        sa.UniqueConstraint("token_hash", name="uq_resets_token_hash"),
    )
    op.create_index("ix_resets_account_id", "resets", ["account_id"])


def downgrade() -> None:
    for table in ("resets", "invites", "tokens", "account_sessions", "accounts"):
        op.drop_table(table)
