"""`python -m server` as its own process, the way users run it, for the tests that need one."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[1]


async def start_server(
    env: dict[str, str], port: int, preexec_fn: Callable[[], object] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """Start it on 127.0.0.1:`port` and wait (10 s at most) until /healthz answers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        preexec_fn=preexec_fn,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return process, url
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    process.kill()
    await process.wait()
    pytest.fail(f"python -m server did not answer /healthz within 10 s (exit {process.returncode})")


async def refused_start(env: dict[str, str]) -> tuple[int | None, list[str]]:
    """Run it where it must refuse to start: its exit code and the lines it wrote on stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    return process.returncode, stderr.decode().strip().splitlines()


async def stop_server(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, as a platform sends it; the exit code."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout=30)


def server_env(**values: str) -> dict[str, str]:
    env = {**os.environ, "LOG_LEVEL": "WARNING", **values}
    for name in ("OPENROUTER_API_KEY", "ACCESS_TOKEN", "OPEN_ACCESS", "SESSION_SECRET", "HOST"):
        if name not in values:
            env.pop(name, None)
    return env
