"""A stored /v1/responses response as a turn of a conversation in its account's history
(SPEC "The Responses API"), so the page shows what a script said through the SDK.

A response's input messages (user and system ones) are written under the previous turn's
answer, or start a new conversation; its answer is the assistant message its run writes
(server/users/answers.py), whose `chat_id` is the response's id. That is how
`previous_response_id` finds the turn it continues, long after the response's own log has
expired: the conversation, and the path from its first message to that answer, which is
the context sent upstream again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.users.history import History
from server.users.history_rows import MAX_TITLE_CHARS
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
    return [
        {"role": m["role"], "content": m["content"] if m["content"] is not None else ""}
        for m in path
    ]


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
    """Write the turn's user and system messages under `place` (a conversation and the
    answer they follow), or in a new conversation; the conversation and the last message,
    which the answer goes under."""
    if place is None:
        made = await history.create_conversation(account_id, {"title": title_of(turn)})
        conversation_id, parent_id = made["id"], None
    else:
        conversation_id, parent_id = place
    for message in turn:
        added = await history.add_message(
            account_id,
            conversation_id,
            {"parent_id": parent_id, "role": message["role"], "content": message["content"]},
        )
        parent_id = added["id"]
    return conversation_id, parent_id
