"""The budget's tables, on the accounts' `metadata` (server/users/schema.py).

`budget_usage` is one row per account and period: what is spent and what running chats
hold, the row the atomic reservation updates. `budget_holds` says who holds what, so a
reservation outlives no process. `spend` is the record: one row per chat of an account.
Money is whole nano-dollars (server/users/costs.py).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from server.users.schema import ID_CHARS, UtcDateTime, metadata

MODEL_CHARS = 200
HOLDER_CHARS = 300


def account_column() -> Column[str]:
    return Column(
        "account_id",
        String(ID_CHARS),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    )


budget_usage = Table(
    "budget_usage",
    metadata,
    account_column(),
    # The period's first day (UTC): a new period is a new row, so nothing needs resetting.
    Column("period_start", Date, nullable=False),
    Column("spent_nanos", BigInteger, nullable=False, default=0),
    Column("reserved_nanos", BigInteger, nullable=False, default=0),
    Column("chats", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("account_id", "period_start"),
    Index("ix_budget_usage_period_start", "period_start"),
)

budget_holds = Table(
    "budget_holds",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    account_column(),
    Column("period_start", Date, nullable=False),
    Column("amount_nanos", BigInteger, nullable=False),
    # host:pid of the process running the chat: the next start on that host frees a dead one's.
    Column("holder", String(HOLDER_CHARS), nullable=False, index=True),
    # After the longest a chat may run, whoever holds it.
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

spend = Table(
    "spend",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    account_column(),
    Column("model", String(MODEL_CHARS), nullable=False),
    # "server": the owner's key, held against the budget; "own": the user's own key.
    Column("key_source", String(16), nullable=False),
    # Held against the budget: the server key and a model with a known price.
    Column("metered", Boolean, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    # None: unknown (no usage.cost and no price).
    Column("cost_nanos", BigInteger, nullable=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=False),
    Index("ix_spend_account_id_started_at", "account_id", "started_at"),
)
