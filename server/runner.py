"""Process life: the AppRunner both start paths use, the graceful shutdown it runs, and the
registry of chats running and WebSockets open in this process that the shutdown works from.

The runner switches on handler cancellation, keeps connections alive longer than the
router, and puts the request clock around each connection. On SIGTERM it stops listening,
then running chats may finish within SHUTDOWN_GRACE while new ones get 503; when the grace
runs out, each chat still running ends with a 503 error event and every WebSocket closes
with 1001. When the chat store is shared (Redis), every WebSocket closes at once with 1012
instead: the page reconnects to another process and follows its chats there, through the
store, while this one keeps running them for the grace. The adapters register their runs,
sockets and listeners into the registry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import resource
import signal
from collections.abc import Iterable
from importlib.util import find_spec
from typing import cast

from aiohttp import WSCloseCode, web

from server.config import Settings, bind_host, settings_key
from server.registry import Registry, registry_key
from server.store.events import chat_store_key
from server.telemetry import AccessLogger
from server.web.request_clock import ClockedServer

# Longer than the router's 90 s keep-alive, so the router is the one that closes idle
# connections and never sends a request down one we are closing.
KEEPALIVE_S = 95.0
# aiohttp's default listen backlog is 128: a burst of chats overflows it, and each dropped
# SYN costs its client a 1 s retransmit (bench `burst`: TcpExtListenOverflows). The kernel
# caps it at net.core.somaxconn; gunicorn's own default is 2048.
LISTEN_BACKLOG = 4096
# After the grace: time for ended chats to send their error, then for sockets to close.
END_WAIT_S = 1.0
CLOSE_WAIT_S = 2.0
# aiohttp's shutdown_timeout for handlers still running after on_shutdown (none of ours);
# aiohttp may wait it twice, once before and once after cancelling them.
HANDLER_WAIT_S = 1.5
PLATFORM_KILL_S = 30.0

log = logging.getLogger(__name__)


# CPython passes over its youngest objects every 700 new containers, and over the older ones
# every tenth pass. A chat's start leaves a few hundred that live as long as it does (its
# request, socket, tasks, log), so 500 chats made a pass every few milliseconds, each
# walking objects that would survive it anyway: with 7,000 the collector's CPU in a p500
# WebSocket run went from 0.17-0.19 s to 0.08 s (bench/README.md, issue 14).
GC_YOUNG_THRESHOLD = 7000


def collect_less_often() -> None:
    """Called by both start paths, once: the collector's young threshold for a server."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one, as Go's runtime does at start.

    Each chat holds two descriptors (client and upstream); a distribution's usual soft
    limit of 1,024 would stop a process near 500 chats, well short of the 1,000 the
    defaults are sized for, while the hard limit is typically far higher.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open files limit from %d to %d", soft, hard)


class StartupRefused(RuntimeError):
    """The app must not serve as started (an open relay, a page with files missing)."""


def open_relay_problem(settings: Settings, sites: Iterable[web.BaseSite]) -> str | None:
    """Why the app must not listen on these sites, or None: the open-relay rule applied to
    the addresses actually bound (a site's name is its URL: http://0.0.0.0:8080)."""
    host = bind_host(site.name.partition("://")[2] for site in sites)
    return dataclasses.replace(settings, host=host).startup_problem()


class GracefulRunner(web.AppRunner):
    """Stops listening, then holds the grace period while open connections are still read.

    aiohttp's own cleanup (`AppRunner.cleanup()`) calls `Server.pre_shutdown()`, closing
    every connection's handler, before on_shutdown, and from then on drops what arrives on
    open WebSockets: cancel frames, and the pongs whose absence makes the heartbeat kill the
    socket. Draining first keeps those working; tests/deploy/test_shutdown.py pins it.
    The only path to finish_chats: python -m server and each gunicorn worker use this runner.
    """

    _clocked: ClockedServer | None = None
    _sites_checked = 0

    @property
    def server(self) -> web.Server | None:
        """aiohttp's protocol factory with a request clock around each connection.

        Every site asks for it as it starts listening, after it is registered: the one
        moment a runner sees the address, whoever made the site (gunicorn's worker too).
        """
        inner = super().server
        if inner is None:
            return None
        if len(self.sites) != self._sites_checked:
            problem = open_relay_problem(self.app[settings_key], self.sites)
            if problem:
                raise StartupRefused(problem)
            self._sites_checked = len(self.sites)
        clocked = self._clocked
        if clocked is None or clocked.inner is not inner:
            clocked = ClockedServer(inner, self.app[settings_key].request_timeout_s)
            self._clocked = clocked
        # ClockedServer offers what sites and gunicorn's worker use of a web.Server.
        return cast(web.Server, clocked)

    async def cleanup(self) -> None:
        for site in list(self.sites):
            await site.stop()
        if self.server is not None:
            await finish_chats(self.app)
        await super().cleanup()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed: it halves the event loop's share of CPU per token."""
    if find_spec("uvloop") is not None:
        import uvloop  # noqa: PLC0415

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def make_runner(app: web.Application) -> GracefulRunner:
    return GracefulRunner(
        app,
        # Off unless asked: without it a client that leaves would not stop upstream.
        handler_cancellation=True,
        keepalive_timeout=KEEPALIVE_S,
        # finish_chats holds SHUTDOWN_GRACE; this bounds what still runs after it.
        shutdown_timeout=HANDLER_WAIT_S,
        access_log_class=AccessLogger,
    )


async def serve_until_signalled(app: web.Application, host: str, port: int) -> None:
    """Serve on host:port until SIGTERM or SIGINT, then shut down gracefully."""
    runner = make_runner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def shutdown_budget_s(grace_s: float) -> float:
    """The longest a shutdown takes after SIGTERM, with a grace period of `grace_s`."""
    return grace_s + END_WAIT_S + CLOSE_WAIT_S + 2 * HANDLER_WAIT_S


async def finish_chats(app: web.Application) -> None:
    """Hold the grace period, then end what still runs with 503 and close every WebSocket.

    GracefulRunner calls it, once, before aiohttp's own cleanup.
    """
    registry = app[registry_key]
    grace_s = app[settings_key].shutdown_grace_s
    registry.draining = True
    if app[chat_store_key].shared:
        await close_sockets(registry, WSCloseCode.SERVICE_RESTART, b"Server restart")
    if registry.runs:
        log.info("shutdown: waiting up to %.0f s for %d chats", grace_s, len(registry.runs))
    if not await registry.wait_idle(grace_s):
        log.warning("shutdown: ending %d chats still running", len(registry.runs))
        registry.shut_down_runs()
        await registry.wait_idle(END_WAIT_S)
    await registry.wait_listeners(END_WAIT_S)
    # The chats' last frames went out on their sockets (or through the store): close them.
    await close_sockets(registry, WSCloseCode.GOING_AWAY, b"Server shutdown")


async def close_sockets(registry: Registry, code: int, message: bytes) -> None:
    # Concurrently and bounded: each close waits for the client's answer.
    closing = [
        asyncio.ensure_future(ws.close(code=code, message=message))
        for ws in registry.sockets.copy()
    ]
    if not closing:
        return
    _, pending = await asyncio.wait(closing, timeout=CLOSE_WAIT_S)
    for task in pending:
        task.cancel()


def setup_shutdown(app: web.Application) -> None:
    app[registry_key] = Registry()
    grace_s = app[settings_key].shutdown_grace_s
    if shutdown_budget_s(grace_s) >= PLATFORM_KILL_S:
        log.warning(
            "SHUTDOWN_GRACE=%s: a shutdown may take %.0f s, past a platform's %.0f s kill",
            grace_s,
            shutdown_budget_s(grace_s),
            PLATFORM_KILL_S,
        )
