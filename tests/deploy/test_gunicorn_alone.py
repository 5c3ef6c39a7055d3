"""The app refuses an open relay whatever starts it: gunicorn without this project's config
(with aiohttp's worker, or with gunicorn's own WSGI one), create_app, the runner."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.runner import StartupRefused, make_runner
from tests.server_process import server_env
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
KEY = {"OPENROUTER_API_KEY": "sk-or-v1-server-key"}


async def gunicorn(
    cwd: Path, port: int, *options: str, **env: str
) -> tuple[asyncio.subprocess.Process, list[str]]:
    """gunicorn on 0.0.0.0:`port` from a folder without gunicorn.conf.py; its output lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gunicorn",
        "server.app:serve",
        "--bind",
        f"0.0.0.0:{port}",
        *options,
        cwd=cwd,
        # This tree's server/, as an installed package would be found, not the folder's.
        env={**server_env(**env), "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return process, []


async def refused(process: asyncio.subprocess.Process) -> tuple[int | None, str]:
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, output.decode(errors="replace")


@pytest.mark.subprocess
async def test_gunicorn_with_aiohttp_worker_and_no_config_refuses_an_open_relay(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    process, _ = await gunicorn(tmp_path, unused_tcp_port, "-k", "aiohttp.GunicornWebWorker", **KEY)
    returncode, output = await refused(process)
    assert returncode != 0
    assert "refusing to start" in output and "ACCESS_TOKEN" in output
    assert KEY["OPENROUTER_API_KEY"] not in output


@pytest.mark.subprocess
@pytest.mark.parametrize("guard", [{"ACCESS_TOKEN": "t" * 32}, {"ACCOUNTS": "required"}])
async def test_gunicorn_with_aiohttp_worker_and_no_config_serves_when_guarded(
    tmp_path: Path, unused_tcp_port: int, guard: dict[str, str]
) -> None:
    process, _ = await gunicorn(
        tmp_path, unused_tcp_port, "-k", "aiohttp.GunicornWebWorker", **guard, **KEY
    )
    url = f"http://127.0.0.1:{unused_tcp_port}"

    async def answers() -> bool:
        assert process.returncode is None, (await refused(process))[1]
        try:
            async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientConnectionError:
            return False

    try:
        await wait_until(answers, "gunicorn serves /healthz", timeout_s=60)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/api/profile") as r:
            assert r.status == 401
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), timeout=40)


@pytest.mark.subprocess
async def test_gunicorn_without_aiohttp_worker_refuses_at_start_naming_it(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    # gunicorn's default (sync, WSGI) worker would answer every request with a 500.
    process, _ = await gunicorn(tmp_path, unused_tcp_port)
    returncode, output = await refused(process)
    assert returncode != 0
    assert "aiohttp.GunicornWebWorker" in output and "server.gunicorn_conf" in output


def test_create_app_refuses_an_open_relay() -> None:
    settings = Settings(host="0.0.0.0", openrouter_api_key="k")
    with pytest.raises(StartupRefused, match="ACCESS_TOKEN"):
        create_app(settings)
    create_app(dataclasses.replace(settings, access_token="t" * 32))
    create_app(dataclasses.replace(settings, open_access=True))


@pytest.mark.parametrize(
    ("host", "refused"), [("0.0.0.0", True), ("::", True), ("127.0.0.1", False)]
)
async def test_the_runner_refuses_to_listen_openly_whatever_the_settings_say(
    host: str, refused: bool
) -> None:
    # Settings say loopback, as they do under gunicorn (its bind is not in the environment).
    runner = make_runner(create_app(Settings(openrouter_api_key="k")))
    await runner.setup()
    try:
        if refused:
            with pytest.raises(StartupRefused, match="ACCESS_TOKEN"):
                await web.TCPSite(runner, host, 0).start()
        else:
            await web.TCPSite(runner, host, 0).start()
            assert runner.addresses
    finally:
        await runner.cleanup()
