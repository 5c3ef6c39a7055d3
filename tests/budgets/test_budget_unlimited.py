"""An account without any limit (no DEFAULT_BUDGET_USD, none of its own) costs its chat no
budget read at the start (issue 22: accounts must not cost the relay), and its spend is
still recorded; a limit an admin sets holds from the next chat on. Both engines."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from server.users.db import database_key
from tests.budget_helpers import budget, costing, set_budget, sign_up
from tests.conftest import MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter


async def test_a_chat_of_an_account_without_a_limit_reads_no_budget_and_is_recorded(
    make_client: MakeClient, fake_openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = await make_client(database_url=database_url)
    account_id = await sign_up(client)  # the first account: an admin, without a limit
    fake_openrouter.script(costing(0.05), costing(0.05))
    budget_reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "budget_usage" in statement:
            budget_reads.append(statement)

    engine = client.app[database_key].engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    response = await client.post("/api/chat/openrouter", json=chat_body())
    assert response.status == 200 and await response.text() == "Hi there"
    sa.event.remove(engine, "before_cursor_execute", seen)
    assert budget_reads == []
    shown = await budget(client)
    assert shown["limit_usd"] is None and shown["spent_usd"] == pytest.approx(0.05)
    # A limit set now holds from the next chat: it is reserved against, and used up.
    await set_budget(client, account_id, 0.05)
    response = await client.post("/api/chat/openrouter", json=chat_body())
    assert response.status == 402
