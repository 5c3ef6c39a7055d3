"""Conversations and messages of an account: every read and write of SPEC's history routes.

Each write is one transaction that first takes the account's counter (server/users/sync.py),
so it changes its rows and takes their versions together, or changes nothing. Every query
names its account: an id of someone else's row is as unknown as one that never was.
Nothing is overwritten but a streaming answer, once, when its chat ends (server/users/answers.py).
It stays whole past 300 lines: one module per SPEC table, its rows shaped in history_rows.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BadRequest, ChatError
from server.users.db import Database
from server.users.history_rows import (
    DEFAULT_TITLE,
    checked_content,
    checked_flag,
    checked_id,
    checked_title,
    conversation_json,
    cursor,
    message_json,
    new_id,
    now_ms,
    read_cursor,
)
from server.users.history_tables import conversations, messages
from server.users.search import search_conversations
from server.users.sync import Versions, changes_since

MAX_PAGE = 200
# A conversation past this is refused a new message: one GET must stay a bounded answer.
MAX_MESSAGES = 10_000


class HistoryNotFound(ChatError):
    """No such conversation or message of this account (someone else's included)."""

    http_status = 404
    code = "not_found"


class HistoryConflict(ChatError):
    """An id of the account's that already names something else."""

    http_status = 409
    code = "conflict"


def no_conversation(conversation_id: str) -> HistoryNotFound:
    return HistoryNotFound(f"No conversation with id {conversation_id}")


# Told the account's new version after each write commits (the live `sync` frames).
Changed = Callable[[str, int], None]


class History:
    def __init__(self, database: Database, changed: Changed) -> None:
        self.database, self.changed = database, changed

    @asynccontextmanager
    async def writing(self, account_id: str) -> AsyncIterator[Versions]:
        """One write transaction holding the account's counter; the devices hear of it once
        it committed."""
        async with self.database.transaction() as db:
            versions = await Versions.lock(db, account_id)
            yield versions
            await versions.save()
        if versions.changed:
            self.changed(account_id, versions.last)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.database.transaction(write=False) as db:
            yield db

    # Conversations

    async def list(
        self, account_id: str, limit: int, before: str | None, archived: bool | None, q: str | None
    ) -> dict[str, Any]:
        async with self.reading() as db:
            if q is not None and q.strip():
                found = await search_conversations(db, account_id, q, limit, archived)
                return {"data": found, "next": None}
            query = select(conversations).where(conversations.c.account_id == account_id)
            if archived is not None:
                query = query.where(conversations.c.archived == archived)
            if before is not None:
                place = read_cursor(before)
                query = query.where(
                    tuple_(conversations.c.updated_at, conversations.c.id) < tuple_(*place)
                )
            query = query.order_by(
                conversations.c.updated_at.desc(), conversations.c.id.desc()
            ).limit(limit + 1)
            rows = list((await db.execute(query)).all())
        page = rows[:limit]
        following = cursor(page[-1].updated_at, page[-1].id) if len(rows) > limit else None
        return {"data": [conversation_json(row) for row in page], "next": following}

    async def create_conversation(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        # A field left out or null is the same: `{"id"?, "title"?}` (SPEC).
        conversation_id = checked_id(_given(body, "id", new_id()), "id")
        title = checked_title(_given(body, "title", DEFAULT_TITLE))
        async with self.writing(account_id) as versions:
            db = versions.db
            existing = await _conversation(db, account_id, conversation_id)
            if existing is not None:
                # A retry after a lost answer: the same id with the same title is that one.
                if body.get("title") is not None and existing.title != title:
                    raise HistoryConflict(f"A conversation with id {conversation_id} exists")
                return conversation_json(existing)
            now = now_ms()
            await db.execute(
                insert(conversations).values(
                    account_id=account_id,
                    id=conversation_id,
                    title=title,
                    pinned=False,
                    archived=False,
                    created_at=now,
                    updated_at=now,
                    version=versions.take(),
                )
            )
            row = await _conversation(db, account_id, conversation_id)
        assert row is not None
        return conversation_json(row)

    async def conversation(self, account_id: str, conversation_id: str) -> dict[str, Any]:
        async with self.reading() as db:
            row = await _conversation(db, account_id, conversation_id)
            if row is None:
                raise no_conversation(conversation_id)
            found = await db.execute(
                select(messages)
                .where(
                    messages.c.account_id == account_id,
                    messages.c.conversation_id == conversation_id,
                )
                .order_by(messages.c.created_at, messages.c.seq)
            )
            rows = found.all()
        return {"conversation": conversation_json(row), "messages": [message_json(m) for m in rows]}

    async def update_conversation(
        self, account_id: str, conversation_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "title" in body:
            values["title"] = checked_title(body["title"])
        for flag in ("pinned", "archived"):
            if flag in body:
                values[flag] = checked_flag(body[flag], flag)
        async with self.writing(account_id) as versions:
            db = versions.db
            row = await _conversation(db, account_id, conversation_id)
            if row is None:
                raise no_conversation(conversation_id)
            if all(getattr(row, name) == value for name, value in values.items()):
                return conversation_json(row)  # nothing changes: no version taken
            await db.execute(
                _where_conversation(update(conversations), account_id, conversation_id).values(
                    **values, updated_at=max(now_ms(), row.updated_at), version=versions.take()
                )
            )
            row = await _conversation(db, account_id, conversation_id)
        assert row is not None
        return conversation_json(row)

    async def delete_conversation(self, account_id: str, conversation_id: str) -> None:
        async with self.writing(account_id) as versions:
            db = versions.db
            if await _conversation(db, account_id, conversation_id) is None:
                raise no_conversation(conversation_id)
            await db.execute(
                delete(messages).where(
                    messages.c.account_id == account_id,
                    messages.c.conversation_id == conversation_id,
                )
            )
            await db.execute(
                _where_conversation(delete(conversations), account_id, conversation_id)
            )
            await versions.deleted("conversation", conversation_id)

    # Messages

    async def add_message(
        self, account_id: str, conversation_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        message_id = checked_id(_given(body, "id", new_id()), "id")
        parent_id = body.get("parent_id")
        if parent_id is not None:
            parent_id = checked_id(parent_id, "parent_id")
        role = body.get("role")
        if role not in ("user", "system"):
            raise BadRequest("role must be user or system")
        if "content" not in body:
            raise BadRequest("content must be a string or a list of content parts")
        text, parts = checked_content(body["content"])
        async with self.writing(account_id) as versions:
            db = versions.db
            existing = await _message(db, account_id, message_id)
            if existing is not None:
                same = (existing.conversation_id, existing.parent_id, existing.role) == (
                    conversation_id,
                    parent_id,
                    role,
                ) and (existing.text, existing.parts) == (text, parts)
                if not same:
                    raise HistoryConflict(f"A message with id {message_id} exists")
                return message_json(existing)  # a retry: the message is there already
            await self.check_place(db, account_id, conversation_id, parent_id, "parent_id")
            now = await self.touch(versions, conversation_id)
            await db.execute(
                insert(messages).values(
                    account_id=account_id,
                    id=message_id,
                    conversation_id=conversation_id,
                    parent_id=parent_id,
                    role=role,
                    text=text,
                    parts=parts,
                    status="done",
                    created_at=now,
                    version=versions.take(),
                )
            )
            row = await _message(db, account_id, message_id)
        assert row is not None
        return message_json(row)

    async def check_place(
        self,
        db: AsyncConnection,
        account_id: str,
        conversation_id: str,
        parent_id: str | None,
        field: str,
        adding: int = 1,
    ) -> None:
        """The conversation is the account's, its parent one of its messages, it has room
        for `adding` more."""
        if await _conversation(db, account_id, conversation_id) is None:
            raise no_conversation(conversation_id)
        if parent_id is not None:
            parent = await _message(db, account_id, parent_id)
            if parent is None or parent.conversation_id != conversation_id:
                raise BadRequest(f"{field} is not a message of conversation {conversation_id}")
        count = (
            await db.execute(
                select(func.count())
                .select_from(messages)
                .where(
                    messages.c.account_id == account_id,
                    messages.c.conversation_id == conversation_id,
                )
            )
        ).scalar_one()
        if count + adding > MAX_MESSAGES:
            raise BadRequest(f"A conversation holds at most {MAX_MESSAGES} messages")

    async def touch(self, versions: Versions, conversation_id: str) -> int:
        """The conversation had activity now: it moves to the top of every device's list."""
        now = now_ms()
        await versions.db.execute(
            _where_conversation(update(conversations), versions.account_id, conversation_id).values(
                updated_at=func.max(conversations.c.updated_at, now)
                if versions.db.dialect.name == "sqlite"
                else func.greatest(conversations.c.updated_at, now),
                version=versions.take(),
            )
        )
        return now

    async def sync(self, account_id: str, since: int) -> dict[str, Any]:
        async with self.reading() as db:
            return await changes_since(db, account_id, since)


def _given(body: dict[str, Any], field: str, default: str) -> object:
    value = body.get(field)
    return default if value is None else value


def _where_conversation(statement: Any, account_id: str, conversation_id: str) -> Any:
    return statement.where(
        conversations.c.account_id == account_id, conversations.c.id == conversation_id
    )


async def _conversation(
    db: AsyncConnection, account_id: str, conversation_id: str
) -> Row[Any] | None:
    query = _where_conversation(select(conversations), account_id, conversation_id)
    return (await db.execute(query)).one_or_none()


async def _message(db: AsyncConnection, account_id: str, message_id: str) -> Row[Any] | None:
    query = select(messages).where(messages.c.account_id == account_id, messages.c.id == message_id)
    return (await db.execute(query)).one_or_none()


async def message_row(db: AsyncConnection, account_id: str, message_id: str) -> Row[Any] | None:
    return await _message(db, account_id, message_id)
