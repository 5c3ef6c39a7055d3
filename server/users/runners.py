"""Answers whose process stopped mid-answer: found by their runner, and ended.

Each process writes its row in `history_runners` (host, pid, a heartbeat every HEARTBEAT_S)
and names it on every answer it streams. At start and at every heartbeat a process looks for
`streaming` answers whose runner is gone: on this machine when its pid no longer runs (a
restart after a crash finds them at once), elsewhere when it was not heard of for
RUNNER_GONE_S. Such an answer is read back from its chat's log when the chat store still
has it (Redis keeps it past its process: the text up to the cut, then its end), so what was
said is kept; otherwise it is marked cut off (error 503). None says `streaming` forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, or_, select

from server.errors import AccountStoreUnavailable, ChatError
from server.store.events import Failed, Final
from server.users.answers import Answers, AnswerWriter
from server.users.history_rows import now_ms
from server.users.history_tables import history_runners, messages

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
# A runner not heard of for this long is gone (another machine that died).
RUNNER_GONE_S = 60.0
CUT_OFF_STATUS, CUT_OFF_MESSAGE = 503, "The answer was cut off: the server stopped mid-answer"
# A dead process's chat in Redis ends (503) once its run mark expires (30 s): read it that long.
REPLAY_WAIT_S = 60.0

# Replays a chat's log (account, chat id) into the writer: its final event, or None when the
# store does not have it. The web layer's, which knows the chat store's keys.
Replay = Callable[[str, str, AnswerWriter], Awaitable[Final | None]]


async def sweep(answers: Answers, replay: Replay | None = None) -> int:
    """End the streaming answers of runners that are gone; how many were found."""
    async with answers.history.reading() as db:
        runners = (await db.execute(select(history_runners))).all()
        live = {r.id for r in runners if runner_alive(r.host, r.pid, r.seen_at)}
        live.add(answers.runner_id)
        found = await db.execute(
            select(
                messages.c.account_id,
                messages.c.id,
                messages.c.conversation_id,
                messages.c.chat_id,
            ).where(
                messages.c.status == "streaming",
                or_(messages.c.runner.is_(None), messages.c.runner.not_in(live)),
            )
        )
        orphans = [o for o in found.all() if o.id not in answers.recovering]
    for orphan in orphans:
        answers.recovering.add(orphan.id)
        ending = end_orphan(answers, orphan, replay)
        if replay is None:
            await ending
        else:
            _ = answers.in_background(ending)  # the shutdown waits for it
    gone = [r.id for r in runners if r.id not in live]
    if gone:
        async with answers.history.database.transaction() as db:
            await db.execute(delete(history_runners).where(history_runners.c.id.in_(gone)))
    if orphans:
        log.warning("%d answers were cut off by a process that stopped", len(orphans))
    return len(orphans)


async def end_orphan(answers: Answers, orphan: Any, replay: Replay | None) -> None:
    writer = AnswerWriter(answers, orphan.account_id, orphan.conversation_id, orphan.id)
    final: Final | None = None
    try:
        if replay is not None and orphan.chat_id is not None:
            final = await asyncio.wait_for(
                replay(orphan.account_id, orphan.chat_id, writer), REPLAY_WAIT_S
            )
    except (TimeoutError, ChatError):
        pass  # not kept, or the store away: what the database has is all there is
    except Exception:
        log.exception("replay of a cut-off answer failed id=%s", orphan.id)
    try:
        values = writer.final_values(final or Failed(CUT_OFF_STATUS, CUT_OFF_MESSAGE))
        await answers.finish_until_written(
            orphan.account_id, orphan.conversation_id, orphan.id, values
        )
    finally:
        answers.recovering.discard(orphan.id)


async def keep_watch(answers: Answers, replay: Replay | None) -> None:
    """Beat and sweep now and every HEARTBEAT_S; the database being away only waits."""
    while True:
        try:
            await answers.beat()
            await sweep(answers, replay)
        except AccountStoreUnavailable:
            pass
        except Exception:
            log.exception("answer sweep failed")
        await asyncio.sleep(HEARTBEAT_S)


def start_watch(answers: Answers, replay: Replay | None) -> None:
    answers.tasks.add(asyncio.create_task(keep_watch(answers, replay)))


def runner_alive(host: str, pid: int, seen_at: int) -> bool:
    if now_ms() - seen_at > RUNNER_GONE_S * 1000:
        return False
    if host != socket.gethostname():
        return True
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine runs (a zombie, killed but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True
