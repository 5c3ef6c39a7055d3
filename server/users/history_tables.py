"""The history's tables: conversations and messages as rows (a tree by `parent_id`), the
account's change counter, the deletions kept for sync, and the processes running answers.

Every row carries its account; every row written takes the account's next version, so a
row's `version` says when it last changed and `GET /api/sync` reads changes by index.
The search indexes (SQLite FTS5, PostgreSQL GIN over `to_tsvector`) are made by the
migration (0002_history): they are per engine and SQLAlchemy's metadata cannot say them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from server.users.schema import ID_CHARS, metadata

MAX_ID_CHARS = 64
# An integer primary key: SQLite's FTS5 index points at it, and a rowid that is not one may
# change on VACUUM. BIGINT on PostgreSQL, SQLite's INTEGER (its rowid) there.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


def _account() -> Column[str]:
    return Column(
        "account_id",
        String(ID_CHARS),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    )


conversations = Table(
    "conversations",
    metadata,
    Column("seq", ROW_ID, primary_key=True, autoincrement=True),
    _account(),
    Column("id", String(MAX_ID_CHARS), nullable=False),
    Column("title", Text, nullable=False),
    Column("pinned", Boolean, nullable=False),
    Column("archived", Boolean, nullable=False),
    # Milliseconds since the epoch: exact, and ordered as the list is.
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    UniqueConstraint("account_id", "id", name="conversations_account_id"),
    # The list, newest first, paged by (updated_at, id): a cursor on this index.
    Index("conversations_by_update", "account_id", "archived", "updated_at", "id"),
    Index("conversations_by_version", "account_id", "version"),
)

messages = Table(
    "messages",
    metadata,
    Column("seq", ROW_ID, primary_key=True, autoincrement=True),
    _account(),
    Column("id", String(MAX_ID_CHARS), nullable=False),
    Column("conversation_id", String(MAX_ID_CHARS), nullable=False),
    Column("parent_id", String(MAX_ID_CHARS)),
    Column("role", String(16), nullable=False),
    # The plain text (what search indexes); `parts` the content's JSON when it is a list.
    Column("text", Text, nullable=False),
    Column("parts", Text),
    Column("reasoning", Text),
    # Tool data as JSON (0003_message_tools): an answer's {"tool_calls": [...]}, a tool
    # output's {"tool_call_id": ...}; NULL for every other message.
    Column("tools", Text),
    Column("status", String(16), nullable=False),
    Column("chat_id", String(MAX_ID_CHARS)),
    Column("model", String(200)),
    Column("usage", Text),
    Column("error_status", Integer),
    Column("error_message", Text),
    # The process that writes a streaming answer (history_runners), to find cut-off ones.
    Column("runner", String(MAX_ID_CHARS)),
    Column("created_at", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    UniqueConstraint("account_id", "id", name="messages_account_id"),
    ForeignKeyConstraint(
        ["account_id", "conversation_id"],
        ["conversations.account_id", "conversations.id"],
        ondelete="CASCADE",
        name="messages_conversation",
    ),
    Index("messages_by_conversation", "account_id", "conversation_id", "created_at"),
    Index("messages_by_version", "account_id", "version"),
    Index("messages_by_status", "status"),
)

history_counters = Table(
    "history_counters",
    metadata,
    Column(
        "account_id",
        String(ID_CHARS),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The last version taken, and the newest deletion forgotten (a cursor below it resets).
    Column("version", BigInteger, nullable=False),
    Column("floor", BigInteger, nullable=False),
)

history_deletions = Table(
    "history_deletions",
    metadata,
    _account(),
    Column("version", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("id", String(MAX_ID_CHARS), nullable=False),
    Column("deleted_at", BigInteger, nullable=False),
    UniqueConstraint("account_id", "version", name="history_deletions_version"),
    Index("history_deletions_by_time", "account_id", "deleted_at"),
)

history_runners = Table(
    "history_runners",
    metadata,
    Column("id", String(MAX_ID_CHARS), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("seen_at", BigInteger, nullable=False),
)
