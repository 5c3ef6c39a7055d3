"""Import and export at the data layer (server/users/transfer.py): a conversation at the
10,000-message cap, one past it, and what an export gives back."""

from __future__ import annotations

import logging

import orjson
import pytest

from server.errors import BadRequest
from server.users.history import MAX_MESSAGES, History
from server.users.transfer import export_json, import_conversations
from tests.history.conftest import ALICE


def page_export(conversation_id: str, messages: int) -> dict[str, object]:
    listed = [
        {"id": f"{conversation_id}-{n}", "role": "user" if n % 2 == 0 else "assistant",
         "content": f"message {n}", "status": "done"}
        for n in range(messages)
    ]  # fmt: skip
    return {"conversations": [{"id": conversation_id, "title": "Long", "messages": listed}]}


async def test_a_conversation_holds_10000_messages_and_not_one_more(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    result = await import_conversations(history, ALICE, page_export("full", MAX_MESSAGES))
    assert (result["imported"], result["skipped"]) == (1, 0)
    found = await history.conversation(ALICE, "full")
    assert len(found["messages"]) == MAX_MESSAGES
    assert found["messages"][-1]["parent_id"] == found["messages"][-2]["id"]
    with pytest.raises(BadRequest, match="at most 10000 messages"):
        await history.add_message(
            ALICE, "full", {"parent_id": None, "role": "user", "content": "one more"}
        )
    with caplog.at_level(logging.INFO, logger="server.users.transfer"):
        over = await import_conversations(history, ALICE, page_export("over", MAX_MESSAGES + 1))
    assert over == {"imported": 0, "skipped": 1}
    assert "conversations[0].messages must be a list of at most" in caplog.text
    _, exported = export_json(found)
    again = await import_conversations(history, ALICE, orjson.loads(exported))
    assert (again["imported"], again["skipped"]) == (0, 1)
