"""SPEC "Running" and "Operations" read to the letter, from outside: a malformed variable
stops `python -m server` with one line naming it; DATA_DIR is made at start and holds the
generated secret (0600) and the SQLite database; `python -m server migrate` only migrates."""

from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path

import aiohttp
import pytest

from server.config import startup_problem
from tests.redis_server import free_port
from tests.server_process import ROOT, refused_start, server_env, start_server, stop_server

MALFORMED = [
    ("DATABASE_URL", "mysql://user@host/db"),
    ("DATABASE_URL", "not a url"),
    ("ACCOUNTS", "maybe"),
    ("SIGNUP", "maybe"),
    ("DEFAULT_BUDGET_USD", "ten"),
    ("DEFAULT_BUDGET_USD", "-1"),
    ("DEFAULT_BUDGET_USD", "1e400"),
    ("BUDGET_PERIOD", "year"),
    ("SESSION_SECRET", "too-short"),
    ("PORT", "eighty"),
    ("UPSTREAM_TIMEOUT", "-5"),
    ("MAX_BODY_BYTES", "lots"),
    ("RESUME_WINDOW_S", "forever"),
    ("LOG_LEVEL", "LOUD"),
    ("REDIS_URL", "http://localhost"),
    ("OPEN_ACCESS", "yes please"),
    ("APP_URL", "chat.example.com"),
    ("OPENROUTER_BASE_URL", "openrouter.ai/api/v1"),
    ("BEHIND_PROXY", "maybe"),
    ("ALLOWED_HOSTS", "https://chat.example.com/"),
    ("ALLOWED_HOSTS", "chat example com"),
    ("ALLOWED_ORIGINS", "chat.example.com"),
    ("ALLOWED_ORIGINS", "https://chat.example.com/app"),
]


@pytest.mark.parametrize(("name", "value"), MALFORMED)
async def test_a_malformed_variable_stops_start_up_in_one_line_naming_it(
    tmp_path: Path, name: str, value: str
) -> None:
    env = server_env(DATA_DIR=str(tmp_path / "data"), **{name: value})
    code, lines = await refused_start(env)
    assert code not in (0, None)
    assert len(lines) == 1 and name in lines[0], lines
    assert "Traceback" not in lines[0]


@pytest.mark.parametrize("secret", [None, "s" * 40])
async def test_a_data_dir_that_cannot_be_made_stops_start_up_in_one_line(
    tmp_path: Path, secret: str | None
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    values = {"DATA_DIR": str(blocker)} | ({} if secret is None else {"SESSION_SECRET": secret})
    code, lines = await refused_start(server_env(**values))
    assert code not in (0, None)
    assert len(lines) == 1 and "DATA_DIR" in lines[0], lines


async def test_data_dir_is_made_at_start_with_the_secret_and_the_database(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    env = server_env(DATA_DIR=str(data), LOG_LEVEL="INFO")
    process, url = await start_server(env, free_port())
    try:
        secret = data / "secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert (data / "chatrelay.db").exists()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{url}/api/accounts",
                json={"email": "owner@example.org", "password": "long enough pass"},
            ) as response:
                assert response.status == 201
            async with session.get(f"{url}/healthz") as response:
                assert (response.status, await response.json()) == (200, {"status": "ok"})
    finally:
        assert await stop_server(process) == 0


async def test_migrate_only_migrates_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "migrate",
        cwd=ROOT,
        env=server_env(DATA_DIR=str(data), SESSION_SECRET="s" * 40),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    assert (data / "chatrelay.db").stat().st_size > 0


def test_gunicorns_master_refuses_a_data_dir_that_cannot_be_made(tmp_path: Path) -> None:
    """The Procfile's web line (gunicorn with server.gunicorn_conf) asks startup_problem
    before any worker boots: one line naming DATA_DIR, not a worker's traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    problem = startup_problem({"DATA_DIR": str(blocker)}, "0.0.0.0", 2)
    assert problem is not None and problem.startswith("DATA_DIR") and "\n" not in problem
    assert startup_problem({"DATA_DIR": str(tmp_path / "made")}, "127.0.0.1", 2) is None
    assert (tmp_path / "made").is_dir()
