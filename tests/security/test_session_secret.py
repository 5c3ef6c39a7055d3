"""SESSION_SECRET: a Fernet key as is, a platform's generated secret stretched with HKDF,
the same on every process; a short one refused at start-up."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
from cryptography.fernet import Fernet

from server.config import ConfigError, Settings, with_session_secret
from tests.conftest import SESSION_SECRET, USER_KEY, MakeClient
from tests.server_process import ROOT, server_env, start_server, stop_server

PLATFORM_SECRET = secrets.token_hex(32)  # what Heroku's `generator: secret` makes


def secret_of(value: str) -> str:
    secret = Settings.from_env({"SESSION_SECRET": value}).session_secret
    assert secret is not None
    return secret


def test_a_fernet_key_is_used_as_is() -> None:
    assert secret_of(SESSION_SECRET) == SESSION_SECRET


def test_a_long_secret_is_stretched_into_a_fernet_key_the_same_everywhere() -> None:
    key = secret_of(PLATFORM_SECRET)
    assert key != PLATFORM_SECRET
    Fernet(key.encode())  # a valid key: this would raise otherwise
    assert secret_of(PLATFORM_SECRET) == key  # every process derives the same one
    assert secret_of(secrets.token_hex(32)) != key
    assert len(secret_of("p" * 32)) == 44  # 32 characters is enough


@pytest.mark.parametrize("value", ["p" * 31, "short", "0123456789abcdef"])
def test_a_short_secret_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="SESSION_SECRET") as refused:
        Settings.from_env({"SESSION_SECRET": value})
    assert value not in str(refused.value) and "\n" not in str(refused.value)


async def test_processes_with_the_same_platform_secret_share_sessions(
    make_client: MakeClient,
) -> None:
    one = await make_client(session_secret=secret_of(PLATFORM_SECRET))
    two = await make_client(session_secret=secret_of(PLATFORM_SECRET))
    await one.put("/api/profile", data=orjson.dumps({"openrouter_api_key": USER_KEY}))
    cookies = {c.key: c.value for c in one.session.cookie_jar}
    two.session.cookie_jar.update_cookies(cookies, two.make_url("/"))
    async with two.get("/api/profile") as response:
        assert (await response.json())["source"] == "session"


@pytest.mark.subprocess
async def test_the_server_starts_with_a_platform_secret(unused_tcp_port: int) -> None:
    env = server_env(SESSION_SECRET=PLATFORM_SECRET)
    process, url = await start_server(env, unused_tcp_port)
    try:
        # unsafe: the jar keeps cookies of an IP address such as 127.0.0.1.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.put(
                f"{url}/api/profile", data=orjson.dumps({"openrouter_api_key": USER_KEY})
            ) as response:
                assert response.status == 200
            async with session.get(f"{url}/api/profile") as response:
                assert (await response.json())["source"] == "session"
    finally:
        assert await stop_server(process) == 0


def test_an_unset_secret_is_made_once_in_data_dir_readable_by_its_owner_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "fresh"
    caplog.set_level(logging.INFO, "server.config")
    first = with_session_secret(Settings(data_dir=data_dir)).session_secret
    assert first is not None
    Fernet(first.encode())  # a usable key
    path = data_dir / "secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert with_session_secret(Settings(data_dir=data_dir)).session_secret == first
    assert first not in caplog.text
    # The variable, when set, wins over the file.
    given = with_session_secret(Settings(data_dir=data_dir, session_secret=SESSION_SECRET))
    assert given.session_secret == SESSION_SECRET


async def test_processes_starting_together_share_the_one_secret_made(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from server.config import Settings, with_session_secret; "
        "print(with_session_secret(Settings(data_dir=Path(sys.argv[1]))).session_secret)"
    )

    async def secret_of_a_process() -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            str(tmp_path / "shared"),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        assert process.returncode == 0
        return out.decode().strip()

    secrets_seen = await asyncio.gather(*(secret_of_a_process() for _ in range(6)))
    assert len(set(secrets_seen)) == 1
    assert (tmp_path / "shared" / "secret").read_text().strip() == secrets_seen[0]
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["secret"]


@pytest.mark.subprocess
async def test_a_generated_secret_keeps_sessions_across_a_restart(
    unused_tcp_port: int, tmp_path: Path
) -> None:
    env = server_env(DATA_DIR=str(tmp_path / "data"))
    process, url = await start_server(env, unused_tcp_port)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        try:
            async with session.put(
                f"{url}/api/profile", data=orjson.dumps({"openrouter_api_key": USER_KEY})
            ) as response:
                assert response.status == 200
        finally:
            assert await stop_server(process) == 0
        process, url = await start_server(env, unused_tcp_port)
        try:
            async with session.get(f"{url}/api/profile") as response:
                assert (await response.json())["source"] == "session"
        finally:
            assert await stop_server(process) == 0


def test_a_secret_generated_on_a_dyno_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with_session_secret(Settings(data_dir=tmp_path / "dyno", dyno="web.1"))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("on a dyno" in m and "lost at every restart" in m for m in warned), warned
