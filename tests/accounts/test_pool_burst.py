"""A burst of signed-in chats on PostgreSQL (issue 22): every chat waits its turn for a
pooled connection and is answered, none gets 503 `Account store unavailable` because the
pool was busy. Each account is written straight into the database with a personal token, so
200 Argon2id sign-ins are not part of the test."""

from __future__ import annotations

import asyncio

import aiohttp
import sqlalchemy as sa

from server.config import Settings
from server.users.credentials import PERSONAL_TOKEN_PREFIX, digest, new_token
from server.users.db import Database, database_key
from server.users.schema import accounts, tokens, utc_now
from tests.account_clients import bearer
from tests.conftest import MakeClient, chat_body
from tests.postgres_server import PostgresServer

CHATS = 200
# Longer than the pool's wait was (10 s), well under what it is now.
BUSY_S = 12.0


async def mint_tokens(database_url: str, count: int) -> list[str]:
    """`count` accounts with a personal token each; the tokens."""
    db = Database(Settings(database_url=database_url))
    await db.migrate()
    now, found, account_rows, token_rows = utc_now(), [], [], []
    for index in range(count):
        token, account_id, email = (
            new_token(PERSONAL_TOKEN_PREFIX),
            f"burst{index}",
            f"u{index}@x.org",
        )
        found.append(token)
        account_rows.append(
            {"id": account_id, "email": email, "email_key": email, "password_hash": "x"}
            | {"admin": False, "disabled": False, "created_at": now}
        )
        token_rows.append(
            {"id": f"t{index}", "account_id": account_id, "name": "burst"}
            | {"token_hash": digest(token), "created_at": now}
        )
    try:
        async with db.transaction() as connection:
            await connection.execute(sa.insert(accounts), account_rows)
            await connection.execute(sa.insert(tokens), token_rows)
    finally:
        await db.aclose()
    return found


async def test_a_burst_of_signed_in_chats_waits_for_the_pool_and_is_answered(
    make_client: MakeClient, postgres_server: PostgresServer
) -> None:
    database_url = postgres_server.create_database()
    minted = await mint_tokens(database_url, CHATS)
    # One connection, so that the burst queues for it as 500 chats queue for a default pool.
    # One address starts every chat: the per-address limits are off.
    client = await make_client(
        database_url=database_url, database_pool_size=1, max_chats_per_client=0, chats_per_minute=0
    )

    lookups: list[str] = []
    engine = client.app[database_key].engine.sync_engine

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if "JOIN tokens" in statement:
            lookups.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    url = str(client.make_url("/api/chat/openrouter"))

    async def chat(session: aiohttp.ClientSession, token: str) -> tuple[int, str]:
        async with session.post(url, json=chat_body(), headers=bearer(token)) as r:
            return r.status, await r.text()

    # All at once: no client-side limit on connections.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        answers = await asyncio.gather(*(chat(session, token) for token in minted))
    assert [status for status, _ in answers] == [200] * CHATS, {a for a in answers if a[0] != 200}
    assert {text for _, text in answers} == {"Hello"}
    # Who each chat is was asked together: a few queries, not one a chat.
    assert 1 <= len(lookups) <= CHATS // 2


async def test_a_chat_that_waits_longer_than_ten_seconds_for_a_busy_pool_is_answered(
    make_client: MakeClient, postgres_server: PostgresServer
) -> None:
    database_url = postgres_server.create_database()
    [token] = await mint_tokens(database_url, 1)
    client = await make_client(database_url=database_url, database_pool_size=1)
    db = client.app[database_key]
    async with db.transaction(write=False):
        # The pool's one connection is held here: the chat queues behind it, longer than
        # the 10 s it used to wait before answering 503.
        chat = asyncio.ensure_future(
            client.post("/api/chat/openrouter", json=chat_body(), headers=bearer(token))
        )
        await asyncio.sleep(BUSY_S)
        assert not chat.done()
    answer = await chat
    assert answer.status == 200 and await answer.text() == "Hello"
