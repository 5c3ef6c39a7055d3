"""Processes on one Redis with different SESSION_SECRETs are said at start, in one line: a
session made on one is empty on the other (issue 21.14). The secret itself goes nowhere."""

from __future__ import annotations

import logging

import pytest
import redis
from cryptography.fernet import Fernet

from tests.conftest import SESSION_SECRET, MakeClient

OTHER_SECRET = Fernet.generate_key().decode()


def secret_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "different SESSION_SECRET" in r.getMessage()]


async def test_a_process_with_another_secret_on_the_same_redis_is_said_at_start(
    make_client: MakeClient,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    first = await make_client(redis_url=redis_url)
    second = await make_client(redis_url=redis_url)  # the same secret: nothing to say
    assert secret_lines(caplog) == []
    odd = await make_client(redis_url=redis_url, session_secret=OTHER_SECRET)
    [warning] = [r for r in caplog.records if "different SESSION_SECRET" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert SESSION_SECRET not in caplog.text and OTHER_SECRET not in caplog.text
    # Redis holds a fingerprint, never the secret.
    with redis.Redis.from_url(redis_url) as plain:
        held = b"".join(plain.zrange("chatrelay:session-secrets", 0, -1))
    assert len(held) == 64 and SESSION_SECRET.encode() not in held
    # Once the odd one is gone, a process with the shared secret starts without the line.
    await odd.close()
    caplog.clear()
    third = await make_client(redis_url=redis_url)
    assert secret_lines(caplog) == []
    for client in (first, second, third):
        await client.close()
