"""gunicorn's side of the Procfile: each worker's AppRunner, and the start-up checks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping

from aiohttp import web

from .app import create_app
from .config import ConfigError, Settings, is_loopback
from .logs import quiet_known_warnings
from .runner import make_runner, raise_open_files_limit

# gunicorn's worker notices SIGTERM on its next one-second tick.
WORKER_TICK_S = 1.0


async def serve() -> web.AppRunner:
    """The gunicorn app factory: an AppRunner, so handler_cancellation can be switched on."""
    quiet_known_warnings()
    raise_open_files_limit()
    return make_runner(create_app(Settings.from_env(os.environ)))


def bind_host(binds: Iterable[str]) -> str:
    """The first bound address that is not loopback, else the first one (host part only)."""
    # A unix socket is reachable from this machine only, like loopback.
    hosts = [
        "localhost" if bind.startswith("unix:") else bind.rpartition(":")[0].strip("[]") or bind
        for bind in binds
    ]
    for host in hosts:
        if not is_loopback(host):
            return host
    return hosts[0] if hosts else "127.0.0.1"


def startup_problem(env: Mapping[str, str], host: str, workers: int) -> str | None:
    """Why gunicorn must not start these workers on `host`, in one line, or None."""
    try:
        settings = Settings.from_env(env)
    except ConfigError as error:
        return str(error)
    return dataclasses.replace(settings, host=host).startup_problem(workers)
