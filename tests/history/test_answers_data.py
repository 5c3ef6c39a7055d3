"""A chat's answer in the history (server/users/answers.py): made before upstream is called,
written once at the end whatever its length, retried while the database is away, and marked
cut off when the process that ran it died."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, update

from server.config import Settings
from server.store.events import Delta, Done, Failed, Reasoning
from server.users.answers import Answers
from server.users.db import Database
from server.users.history import History
from server.users.history_tables import history_runners, messages
from server.users.runners import CUT_OFF_STATUS, sweep
from tests.history.conftest import ALICE, Told, add_account
from tests.postgres_server import PostgresServer
from tests.waiting import wait_until


@contextmanager
def counted_writes(database: Database) -> Iterator[list[str]]:
    """Every INSERT, UPDATE and DELETE the engine sends while the block runs."""
    writes: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield writes
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)


async def conversation_with_question(history: History) -> None:
    await history.create_conversation(ALICE, {"id": "c"})
    await history.add_message(
        ALICE, "c", {"id": "q", "parent_id": None, "role": "user", "content": "Hi"}
    )


async def test_an_answer_costs_the_same_few_writes_whatever_its_length(
    history: History, database: Database
) -> None:
    await conversation_with_question(history)
    answers = Answers(history)
    await answers.beat()  # the process's own row, written once at its start
    counts = []
    for tokens in (3, 3000):
        with counted_writes(database) as writes:
            writer = await answers.start(ALICE, ("c", "q", f"a{tokens}"), f"chat{tokens}", "m/x")
            for number in range(tokens):
                writer.seen([Reasoning("hm ")] if number == 0 else [Delta(f"t{number} ")])
            await writer.ended(Done("stop", {"total_tokens": tokens}))
        counts.append(len(writes))
    assert counts[0] == counts[1] <= 8
    found = await history.conversation(ALICE, "c")
    answer = found["messages"][-1]
    assert answer["id"] == "a3000" and answer["status"] == "done"
    assert answer["content"].startswith("t1 t2 ") and answer["content"].endswith("t2999 ")
    assert answer["reasoning"] == "hm " and answer["usage"] == {"total_tokens": 3000}
    assert answer["parent_id"] == "q" and answer["chat_id"] == "chat3000"
    assert answer["model"] == "m/x"


async def test_a_failed_or_cancelled_answer_says_so_and_keeps_its_text(history: History) -> None:
    await conversation_with_question(history)
    answers = Answers(history)
    failed = await answers.start(ALICE, ("c", "q", "f"), "chat1", "m/x")
    failed.seen([Delta("half")])
    await failed.ended(Failed(429, "Slow down"))
    cancelled = await answers.start(ALICE, ("c", "q", "k"), "chat2", "m/x")
    cancelled.seen([Delta("some")])
    await cancelled.ended(Done("cancelled", None))
    by_id = {m["id"]: m for m in (await history.conversation(ALICE, "c"))["messages"]}
    assert by_id["f"]["status"] == "error" and by_id["f"]["content"] == "half"
    assert by_id["f"]["error"] == {"status": 429, "message": "Slow down"}
    assert by_id["k"]["status"] == "cancelled" and by_id["k"]["content"] == "some"
    # The end is written once: a second end changes nothing.
    await failed.ended(Done("stop", None))
    again = {m["id"]: m for m in (await history.conversation(ALICE, "c"))["messages"]}
    assert again["f"] == by_id["f"]


async def test_an_answer_is_not_lost_while_the_database_is_away(
    make_postgres_server: object, told: Told
) -> None:
    server: PostgresServer = make_postgres_server()  # type: ignore[operator]
    database = Database(Settings(database_url=server.create_database()))
    await database.migrate()
    await add_account(database, ALICE)
    history = History(database, told)
    answers = Answers(history)
    try:
        await conversation_with_question(history)
        writer = await answers.start(ALICE, ("c", "q", "a"), "chat", "m/x")
        writer.seen([Delta("kept through an outage")])
        server.stop()
        # The chat ends on time: the write goes on retrying in its own task.
        await asyncio.wait_for(writer.ended(Done("stop", None)), 10)
        assert answers.writes
        server.start()

        async def written() -> bool:
            try:
                found = await history.conversation(ALICE, "c")
            except Exception:
                return False
            return bool(found["messages"][-1]["status"] == "done")

        await wait_until(written, "the answer was written once the database came back", 60)
        found = await history.conversation(ALICE, "c")
        assert found["messages"][-1]["content"] == "kept through an outage"
    finally:
        await answers.close(1)
        await database.aclose()


async def dead_pid() -> int:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await process.wait()
    return process.pid


async def test_answers_of_a_dead_process_are_marked_cut_off_and_live_ones_are_left(
    history: History, database: Database
) -> None:
    await conversation_with_question(history)
    dead, alive = Answers(history), Answers(history)
    await alive.beat()
    await dead.start(ALICE, ("c", "q", "orphan"), "chat1", "m/x")
    await alive.start(ALICE, ("c", "q", "running"), "chat2", "m/x")
    async with database.transaction() as db:
        await db.execute(
            update(history_runners)
            .where(history_runners.c.id == dead.runner_id)
            .values(pid=await dead_pid())
        )
    # A restart on this machine: the dead runner's pid is gone, so it is marked at once.
    assert await sweep(Answers(history)) == 1
    by_id = {m["id"]: m for m in (await history.conversation(ALICE, "c"))["messages"]}
    assert by_id["orphan"]["status"] == "error"
    assert by_id["orphan"]["error"]["status"] == CUT_OFF_STATUS
    assert by_id["running"]["status"] == "streaming"
    # A runner of another machine unheard of for minutes is gone too.
    async with database.transaction() as db:
        await db.execute(
            update(history_runners)
            .where(history_runners.c.id == alive.runner_id)
            .values(host="elsewhere", seen_at=0)
        )
    assert await sweep(Answers(history)) == 1
    async with database.transaction(write=False) as db:
        statuses = (await db.execute(messages.select())).all()
    assert {row.id: row.status for row in statuses}["running"] == "error"
