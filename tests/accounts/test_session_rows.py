"""What the database keeps of sessions, on both engines: no row outlives the cookie that
could use it, and none holds the cookie's id in clear."""

from __future__ import annotations

import datetime
from pathlib import Path

import sqlalchemy as sa

from server.config import Settings
from server.users.accounts import SignUp, create_account
from server.users.credentials import digest
from server.users.db import Database
from server.users.schema import account_sessions
from server.users.sessions import open_session, session_account
from tests.conftest import SESSION_SECRET


async def test_a_session_unseen_for_longer_than_a_cookie_lives_is_gone_at_the_next_sign_in(
    database_url: str, empty_data_dir: Path
) -> None:
    db = Database(
        Settings(data_dir=empty_data_dir, database_url=database_url, session_secret=SESSION_SECRET)
    )
    try:
        form = SignUp("ann@example.org", "-", None, None)
        async with db.transaction() as connection:
            account = await create_account(connection, form, signup="open", may_claim_server=True)
            old = await open_session(connection, account.id)
            recent = await open_session(connection, account.id)
            long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=31)
            await connection.execute(
                sa.update(account_sessions)
                .where(account_sessions.c.id != digest(recent))
                .values(last_seen_at=long_ago)
            )
        async with db.transaction() as connection:
            stored = set((await connection.execute(sa.select(account_sessions.c.id))).scalars())
            assert old not in stored and recent not in stored  # digests only
            await open_session(connection, account.id)
            assert await session_account(connection, old) is None
            assert await session_account(connection, recent) is not None
    finally:
        await db.aclose()
