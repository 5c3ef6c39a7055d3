"""Budgets: spend per account and period, the holds of running chats, and one row per chat.

Revision ID: 0002_budgets
Revises: 0001_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.users.schema import UtcDateTime

revision: str = "0002_budgets"
down_revision: str | tuple[str, ...] | None = "0001_accounts"
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
        "budget_usage",
        account_ref("budget_usage"),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("spent_nanos", sa.BigInteger, nullable=False),
        sa.Column("reserved_nanos", sa.BigInteger, nullable=False),
        sa.Column("chats", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "period_start", name="pk_budget_usage"),
    )
    op.create_index("ix_budget_usage_period_start", "budget_usage", ["period_start"])
    op.create_table(
        "budget_holds",
        sa.Column("id", sa.String(32)),
        account_ref("budget_holds"),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("amount_nanos", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budget_holds"),
    )
    op.create_index("ix_budget_holds_holder", "budget_holds", ["holder"])
    op.create_index("ix_budget_holds_expires_at", "budget_holds", ["expires_at"])
    op.create_table(
        "spend",
        sa.Column("id", sa.String(32)),
        account_ref("spend"),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("key_source", sa.String(16), nullable=False),
        sa.Column("metered", sa.Boolean, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("cost_nanos", sa.BigInteger, nullable=True),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("ended_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_spend"),
    )
    op.create_index("ix_spend_account_id_started_at", "spend", ["account_id", "started_at"])


def downgrade() -> None:
    for table in ("spend", "budget_holds", "budget_usage"):
        op.drop_table(table)
