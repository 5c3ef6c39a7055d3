"""History and sync: conversations, messages, the account's change counter, deletions kept
for sync, the processes that write answers, and the full-text index of each engine.

Revision ID: 0002_history
Revises: 0001_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_history"
down_revision: str | tuple[str, ...] | None = "0001_accounts"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def account_ref(table: str, *, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "account_id",
        sa.String(32),
        sa.ForeignKey("accounts.id", ondelete="CASCADE", name=f"fk_{table}_account_id_accounts"),
        nullable=False,
        primary_key=primary_key,
    )


# FTS5 over the rows' own text (external content: the text is stored once), kept in step
# by triggers, so no code path can forget it.
SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', "
    "content_rowid='seq', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text); END",
    "CREATE VIRTUAL TABLE conversations_fts USING fts5(title, content='conversations', "
    "content_rowid='seq', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN "
    "INSERT INTO conversations_fts(rowid, title) VALUES (new.seq, new.title); END",
    "CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN "
    "INSERT INTO conversations_fts(conversations_fts, rowid, title) "
    "VALUES ('delete', old.seq, old.title); END",
    "CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN "
    "INSERT INTO conversations_fts(conversations_fts, rowid, title) "
    "VALUES ('delete', old.seq, old.title); "
    "INSERT INTO conversations_fts(rowid, title) VALUES (new.seq, new.title); END",
]
POSTGRES_SEARCH = [
    "CREATE INDEX messages_search ON messages USING gin (to_tsvector('simple', text))",
    "CREATE INDEX conversations_search ON conversations USING gin (to_tsvector('simple', title))",
]


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("seq", ROW_ID, primary_key=True, autoincrement=True),
        account_ref("conversations"),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("pinned", sa.Boolean, nullable=False),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("account_id", "id", name="conversations_account_id"),
    )
    op.create_index(
        "conversations_by_update", "conversations", ["account_id", "archived", "updated_at", "id"]
    )
    op.create_index("conversations_by_version", "conversations", ["account_id", "version"])
    op.create_table(
        "messages",
        sa.Column("seq", ROW_ID, primary_key=True, autoincrement=True),
        account_ref("messages"),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(64)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("parts", sa.Text),
        sa.Column("reasoning", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(64)),
        sa.Column("model", sa.String(200)),
        sa.Column("usage", sa.Text),
        sa.Column("error_status", sa.Integer),
        sa.Column("error_message", sa.Text),
        sa.Column("runner", sa.String(64)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("account_id", "id", name="messages_account_id"),
        sa.ForeignKeyConstraint(
            ["account_id", "conversation_id"],
            ["conversations.account_id", "conversations.id"],
            ondelete="CASCADE",
            name="messages_conversation",
        ),
    )
    op.create_index(
        "messages_by_conversation", "messages", ["account_id", "conversation_id", "created_at"]
    )
    op.create_index("messages_by_version", "messages", ["account_id", "version"])
    op.create_index("messages_by_status", "messages", ["status"])
    op.create_table(
        "history_counters",
        account_ref("history_counters", primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("floor", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "history_deletions",
        account_ref("history_deletions"),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("account_id", "version", name="history_deletions_version"),
    )
    op.create_index("history_deletions_by_time", "history_deletions", ["account_id", "deleted_at"])
    op.create_table(
        "history_runners",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("seen_at", sa.BigInteger, nullable=False),
    )
    search = SQLITE_SEARCH if op.get_bind().dialect.name == "sqlite" else POSTGRES_SEARCH
    for statement in search:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS messages_fts")
        op.execute("DROP TABLE IF EXISTS conversations_fts")
    for table in ("history_runners", "history_deletions", "history_counters", "messages"):
        op.drop_table(table)
    op.drop_table("conversations")
