"""A stored /v1/responses response as a turn of a conversation in its account's history
(SPEC "The Responses API"), so the page shows what a script said through the SDK.

A response's input, as the chat messages it became upstream, is written under the previous
turn's answer, or starts a new conversation; its answer is the assistant message its run
writes (server/users/answers.py), whose `chat_id` is the response's id. That is how
`previous_response_id` finds the turn it continues, long after the response's own log has
expired: the conversation, and the path from its first message to that answer, which is
the context sent upstream again.

Function calls are kept too (issue 25), as chat completions say them, in the messages'
`tools` column: an answer that called tools keeps its `tool_calls`, and each
`function_call_output` is a `tool` message with its `tool_call_id`. So the path sent again
is exactly what a stateless client would send: the tool loop every agent SDK runs on
`previous_response_id` gives upstream each call before its output.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from server.users.history import History
from server.users.history_rows import MAX_TITLE_CHARS, checked_content, new_id, tools_json
from server.users.history_tables import messages

# A conversation's title: the start of its first question, as the page names one.
TITLE_CHARS = 80
# The longest path walked back from an answer (a chain of turns, each a few messages).
MAX_PATH = 10_000


async def answer_of(history: History, account_id: str, response_id: str) -> tuple[str, str] | None:
    """The conversation and message id of the answer a response of the account wrote."""
    async with history.reading() as db:
        found = await db.execute(
            select(messages.c.conversation_id, messages.c.id).where(
                messages.c.account_id == account_id,
                messages.c.chat_id == response_id,
                messages.c.role == "assistant",
            )
        )
        row = found.first()
    return None if row is None else (row.conversation_id, row.id)


async def context_of(
    history: History, account_id: str, conversation_id: str, message_id: str
) -> list[dict[str, Any]]:
    """The conversation's messages from its first to `message_id`, as chat messages."""
    kept = await history.conversation(account_id, conversation_id)
    by_id = {m["id"]: m for m in kept["messages"]}
    path: list[dict[str, Any]] = []
    at: str | None = message_id
    while at is not None and at in by_id and len(path) < MAX_PATH:
        path.append(by_id[at])
        at = by_id[at]["parent_id"]
    path.reverse()
    return [chat_message(m) for m in path]


def chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """A history message as the chat message it was upstream."""
    content = message["content"] if message["content"] is not None else ""
    out: dict[str, Any] = {"role": message["role"], "content": content}
    if "tool_calls" in message:
        out["tool_calls"] = message["tool_calls"]
        # A turn that only called tools says no text: null, as upstream and the SDKs say it.
        if content == "":
            out["content"] = None
    if "tool_call_id" in message:
        out["tool_call_id"] = message["tool_call_id"]
    return out


def title_of(turn: list[dict[str, Any]]) -> str:
    for message in turn:
        content = message["content"]
        text = content if isinstance(content, str) else ""
        if isinstance(content, list):
            text = " ".join(p["text"] for p in content if isinstance(p.get("text"), str))
        if text.strip():
            title = " ".join(text.split())
            return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
    return "Responses API"[:MAX_TITLE_CHARS]


async def write_turn(
    history: History,
    account_id: str,
    place: tuple[str, str] | None,
    turn: list[dict[str, Any]],
) -> tuple[str, str | None]:
    """Write the turn's chat messages (user, system, an earlier answer handed back, its
    tool calls and their outputs) under `place` (a conversation and the answer they
    follow), or in a new conversation, in one transaction; the conversation and the last
    message, which the answer goes under."""
    if place is None:
        made = await history.create_conversation(account_id, {"title": title_of(turn)})
        conversation_id, parent_id = made["id"], None
    else:
        conversation_id, parent_id = place
    async with history.writing(account_id) as versions:
        db = versions.db
        # Room for the turn and its answer, which the run's writer adds next.
        await history.check_place(
            db, account_id, conversation_id, parent_id, "previous_response_id", len(turn) + 1
        )
        now = await history.touch(versions, conversation_id)
        for message in turn:
            content = message["content"]
            text, parts = checked_content("" if content is None else content, "input")
            message_id = new_id()
            # One time for the turn: its messages keep their order by seq (as the GET reads).
            await db.execute(
                insert(messages).values(
                    account_id=account_id,
                    id=message_id,
                    conversation_id=conversation_id,
                    parent_id=parent_id,
                    role=message["role"],
                    text=text,
                    parts=parts,
                    tools=tools_json(message),
                    status="done",
                    created_at=now,
                    version=versions.take(),
                )
            )
            parent_id = message_id
    return conversation_id, parent_id
