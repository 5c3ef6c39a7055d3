"""A chat that writes history: its assistant message made before upstream is called, and its
answer written there by the process that runs it when the chat ends, listener or not.

A run passes each upstream read to its AnswerWriter (a run hook, server/relay/runs.py), which
keeps the text; at the end one transaction writes text, reasoning, usage and status, so a chat
costs two writes whatever its length. A database away at the end does not lose the answer:
the write is retried in a task of its own until it lands (the chat's log still replays it
meanwhile). Each answer names this process as its runner (`history_runners`), so those of
a process that died are found and ended (server/users/runners.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Coroutine, Sequence
from typing import Any

import orjson
from sqlalchemy import delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from server.errors import AccountStoreUnavailable, BadRequest, ChatError
from server.relay.responses import tool_calls_of
from server.store.events import Delta, Done, Failed, Final, LogEvent, Raw, Reasoning
from server.users.history import History, HistoryConflict, message_row
from server.users.history_rows import checked_id, new_id, now_ms
from server.users.history_tables import history_runners, messages

log = logging.getLogger(__name__)

# The first try of the final write is waited for (a device that sees `done` finds the
# answer in the history); longer, and the chat ends while the write goes on retrying.
FIRST_WRITE_WAIT_S = 2.0
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0


def parse_conversation(value: object) -> tuple[str, str | None, str]:
    """A chat's `conversation`: {id, parent_id, message_id?}, checked; the message id made."""
    if not isinstance(value, dict):
        raise BadRequest("conversation must be an object with id and parent_id")
    conversation_id = checked_id(value.get("id"), "conversation.id")
    parent = value.get("parent_id")
    parent_id = None if parent is None else checked_id(parent, "conversation.parent_id")
    message = value.get("message_id")
    message_id = new_id() if message is None else checked_id(message, "conversation.message_id")
    return conversation_id, parent_id, message_id


class Answers:
    """The answers this process writes, and its record as a runner of them."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.runner_id = new_id()
        # Whether this process's runner row is written: an answer naming an unknown runner
        # would be cut off by another process's sweep.
        self.registered = False
        self.writes: set[asyncio.Task[None]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        # Cut-off answers being read back from their chats' logs (server/users/runners.py).
        self.recovering: set[str] = set()

    async def start(
        self,
        account_id: str,
        conversation: tuple[str, str | None, str],
        chat_id: str,
        model: str,
    ) -> AnswerWriter:
        """Make the chat's assistant message (status `streaming`); its writer is the run's hook."""
        conversation_id, parent_id, message_id = conversation
        if not self.registered:  # the database was away when this process started
            await self.beat()
        async with self.history.writing(account_id) as versions:
            db = versions.db
            if await message_row(db, account_id, message_id) is not None:
                raise HistoryConflict(f"A message with id {message_id} exists")
            await self.history.check_place(
                db, account_id, conversation_id, parent_id, "conversation.parent_id"
            )
            now = await self.history.touch(versions, conversation_id)
            await db.execute(
                insert(messages).values(
                    account_id=account_id,
                    id=message_id,
                    conversation_id=conversation_id,
                    parent_id=parent_id,
                    role="assistant",
                    text="",
                    status="streaming",
                    chat_id=chat_id,
                    model=model,
                    runner=self.runner_id,
                    created_at=now,
                    version=versions.take(),
                )
            )
        return AnswerWriter(self, account_id, conversation_id, message_id)

    async def finish(
        self, account_id: str, conversation_id: str, message_id: str, values: dict[str, Any]
    ) -> None:
        """The answer's one final write; a message no longer streaming is left as it is."""
        async with self.history.writing(account_id) as versions:
            done = await versions.db.execute(
                update(messages)
                .where(
                    messages.c.account_id == account_id,
                    messages.c.id == message_id,
                    messages.c.status == "streaming",
                )
                .values(**values, runner=None, version=versions.take())
            )
            if done.rowcount:
                await self.history.touch(versions, conversation_id)
            else:
                versions.last = versions.first  # nothing written, no version taken

    async def finish_until_written(
        self, account_id: str, conversation_id: str, message_id: str, values: dict[str, Any]
    ) -> None:
        wait_s = RETRY_FIRST_S
        while True:
            try:
                await self.finish(account_id, conversation_id, message_id, values)
                return
            except AccountStoreUnavailable:
                log.warning("answer not written yet id=%s: retrying in %g s", message_id, wait_s)
            except IntegrityError:  # the account was deleted meanwhile: nothing to keep
                log.info("answer not written id=%s: its account is gone", message_id)
                return
            except Exception:
                log.exception("answer not written id=%s", message_id)
                return
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, RETRY_MAX_S)

    def in_background(self, write: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A write the shutdown waits for (a bounded time)."""
        task = asyncio.create_task(write)
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)
        return task

    async def write_end(
        self, account_id: str, conversation_id: str, message_id: str, values: dict[str, Any]
    ) -> None:
        task = self.in_background(
            self.finish_until_written(account_id, conversation_id, message_id, values)
        )
        # Shielded by the task: a shutdown that cancels the run does not cancel the write.
        await asyncio.wait([task], timeout=FIRST_WRITE_WAIT_S)

    # The runners: which process writes which streaming answer.

    async def beat(self) -> None:
        """Say this process is alive (host and pid: a restart on this machine can tell at
        once that a runner's process is gone)."""
        values = {"host": socket.gethostname(), "pid": os.getpid(), "seen_at": now_ms()}
        async with self.history.database.transaction() as db:
            statement = (
                sqlite.insert(history_runners)
                if db.dialect.name == "sqlite"
                else postgresql.insert(history_runners)
            )
            await db.execute(
                statement.values(id=self.runner_id, **values).on_conflict_do_update(
                    index_elements=["id"], set_=values
                )
            )
        self.registered = True

    async def close(self, wait_s: float) -> None:
        """Let pending answer writes land (bounded), then stop and leave the runners."""
        for task in self.tasks:
            task.cancel()
        pending = list(self.writes | self.tasks)
        if pending:
            await asyncio.wait(pending, timeout=wait_s)
        try:
            async with self.history.database.transaction() as db:
                await db.execute(
                    delete(history_runners).where(history_runners.c.id == self.runner_id)
                )
        except AccountStoreUnavailable:
            pass


class AnswerWriter:
    """A run's hook (server/relay/runs.py): keeps the answer, writes it once at the end.

    A /v1/responses run's function calls are kept as the message's `tool_calls`, read at the
    end from the log's outline (its Raw events, and each run of text once): the answer a
    `previous_response_id` continues must give upstream its calls before their outputs."""

    __slots__ = (
        "account_id",
        "answers",
        "conversation_id",
        "last",
        "message_id",
        "outline",
        "reasoning",
        "text",
    )

    def __init__(
        self, answers: Answers, account_id: str, conversation_id: str, message_id: str
    ) -> None:
        self.answers, self.account_id = answers, account_id
        self.conversation_id, self.message_id = conversation_id, message_id
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.outline: list[LogEvent] = []
        self.last: type[LogEvent] | None = None  # the type of the outline's last event

    def seen(self, events: Sequence[LogEvent]) -> None:
        # Per token one more comparison: a run of text is outlined by its first piece.
        for event in events:
            if type(event) is Delta:
                self.text.append(event.content)
                if self.last is not Delta and event.content:
                    self.outline.append(event)
                    self.last = Delta
            elif type(event) is Reasoning:
                self.reasoning.append(event.content)
                if self.last is not Reasoning and event.content:
                    self.outline.append(event)
                    self.last = Reasoning
            elif type(event) is Raw:
                self.outline.append(event)
                self.last = Raw

    async def ended(self, final: Final) -> None:
        await self.answers.write_end(
            self.account_id, self.conversation_id, self.message_id, self.final_values(final)
        )

    async def failed_to_start(self, error: ChatError) -> None:
        """The run never started (its id in use, the chat store away): the message says so."""
        await self.ended(Failed(error.status, error.message))

    def final_values(self, final: Final) -> dict[str, Any]:
        reasoning = "".join(self.reasoning)
        values: dict[str, Any] = {"text": "".join(self.text), "reasoning": reasoning or None}
        if isinstance(final, Done):
            values["status"] = "cancelled" if final.finish_reason == "cancelled" else "done"
            values["usage"] = None if final.usage is None else orjson.dumps(final.usage).decode()
            # A cancelled answer's calls may be cut short: only a whole answer's are kept.
            calls = tool_calls_of(self.outline) if values["status"] == "done" else []
            values["tools"] = orjson.dumps({"tool_calls": calls}).decode() if calls else None
        else:
            values["status"] = "error"
            values["error_status"], values["error_message"] = final.status, final.message
        return values
