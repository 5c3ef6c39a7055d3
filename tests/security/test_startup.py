"""Start-up refusals: a malformed SESSION_SECRET, an open relay; the guarded ways to start."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from tests.security.conftest import ACCESS_TOKEN
from tests.server_process import refused_start, server_env, start_server, stop_server

pytestmark = pytest.mark.subprocess


@pytest.mark.parametrize(
    "secret",
    [
        "not-a-fernet-key",
        "x" * 31,
        base64.urlsafe_b64encode(b"x" * 16).decode(),  # base64, but of 16 bytes
        "é" * 31,
    ],
)
async def test_malformed_session_secret_refuses_to_start(secret: str, unused_tcp_port: int) -> None:
    env = server_env(SESSION_SECRET=secret, PORT=str(unused_tcp_port))
    returncode, lines = await refused_start(env)
    assert returncode != 0
    assert len(lines) == 1 and "SESSION_SECRET" in lines[0]
    assert secret not in lines[0]  # a secret, even a wrong one, is not echoed


@pytest.mark.parametrize("guard", [{"ACCESS_TOKEN": ACCESS_TOKEN}, {"OPEN_ACCESS": "1"}])
async def test_a_server_key_on_every_interface_starts_when_guarded_or_meant(
    guard: dict[str, str], unused_tcp_port: int
) -> None:
    env = server_env(OPENROUTER_API_KEY="sk-or-v1-k", HOST="0.0.0.0", **guard)
    process, url = await start_server(env, unused_tcp_port)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/api/profile") as r:
            assert r.status == (401 if "ACCESS_TOKEN" in guard else 200)
    finally:
        await stop_server(process)


@pytest.mark.parametrize(
    ("name", "value"), [("LOG_LEVEL", "verbose"), ("LOG_FORMAT", "xml"), ("PORT", "http")]
)
async def test_a_malformed_variable_is_one_line_naming_it(
    name: str, value: str, unused_tcp_port: int
) -> None:
    env = server_env(**{"PORT": str(unused_tcp_port), name: value})
    returncode, lines = await refused_start(env)
    assert returncode == 2
    assert len(lines) == 1 and name in lines[0], lines
