"""The Procfile as a platform runs it: honcho, gunicorn, two workers, real signals.

The app is started from the `web:` line itself on a free port with WEB_CONCURRENCY=2,
against the fake OpenRouter served by this test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.clients import receive, resume_frame, text_of, until_end, ws_chat
from tests.conftest import SESSION_SECRET, USER_KEY, chat_body
from tests.fake_openrouter import COMMENT, FakeOpenRouter, Reply, chunk, event, sse_reply
from tests.postgres_server import PostgresServer
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
HANG = Reply(steps=[COMMENT, event(chunk("started")), "hang"])
# honcho prefixes each line of the process with "HH:MM:SS web.1  | ".
LINE_PREFIX = re.compile(r"^\S+ (\S+)\s+\| ")

pytestmark = pytest.mark.subprocess


@dataclass
class Honcho:
    process: asyncio.subprocess.Process
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def web_pid(self) -> int:
        for line in self.lines:
            found = re.search(r"web\.1 started \(pid=(\d+)\)", line)
            if found:
                return int(found.group(1))
        raise AssertionError("honcho did not start web.1:\n" + "\n".join(self.lines))

    def json_lines(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.lines:
            text = LINE_PREFIX.sub("", line)
            if text.startswith("{"):
                entries.append(orjson.loads(text))
        return entries

    async def logged(
        self, keep: Callable[[dict[str, Any]], bool], count: int
    ) -> list[dict[str, Any]]:
        """The JSON log entries `keep` selects, once `count` of them came through honcho."""
        for _ in range(100):
            entries = [entry for entry in self.json_lines() if keep(entry)]
            if len(entries) >= count:
                return entries
            await asyncio.sleep(0.05)
        return [entry for entry in self.json_lines() if keep(entry)]

    def terminate_like_the_platform(self) -> None:
        """SIGTERM to every process of the dyno: the gunicorn master and its workers."""
        os.killpg(self.web_pid, signal.SIGTERM)


StartHoncho = Callable[..., Awaitable[Honcho]]


async def read_lines(stream: asyncio.StreamReader, lines: list[str]) -> None:
    async for raw in stream:
        lines.append(raw.decode(errors="replace").rstrip("\n"))


@pytest.fixture
async def start_honcho(
    fake_openrouter: FakeOpenRouter, unused_tcp_port_factory: Any, tmp_path: Path
) -> AsyncIterator[StartHoncho]:
    started: list[Honcho] = []
    readers: list[asyncio.Task[None]] = []
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")

    async def start(wait_ready: bool = True, **env_overrides: str) -> Honcho:
        port = unused_tcp_port_factory()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"OPENROUTER_API_KEY", "ACCESS_TOKEN", "SESSION_SECRET", "PORT"}
        }
        if not (ROOT / ".venv" / "bin" / "python").exists():
            pytest.fail("no .venv beside the Procfile: `make setup` makes it (README)")
        # As `.venv/bin/honcho start` runs it: the virtualenv is not on PATH (the Procfile
        # must find it itself).
        venv_bin = str(Path(sys.executable).parent)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
        env.update(
            PATH=os.pathsep.join(path),
            OPENROUTER_BASE_URL=fake_openrouter.url,
            WEB_CONCURRENCY="2",
            SESSION_SECRET=SESSION_SECRET,
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        env.update(env_overrides)
        env = {key: value for key, value in env.items() if value != ""}
        command = ["-m", "honcho", "start", "--no-colour", "-f", "Procfile"]
        options = ["-e", str(empty_env_file), "-p", str(port), "web"]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            *options,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        honcho = Honcho(process, f"http://127.0.0.1:{port}")
        readers.append(asyncio.ensure_future(read_lines(process.stdout, honcho.lines)))
        started.append(honcho)
        if wait_ready:
            await wait_until_ready(honcho)
        return honcho

    yield start
    for honcho in started:
        if honcho.process.returncode is None:
            try:
                honcho.terminate_like_the_platform()
            except (AssertionError, ProcessLookupError):
                honcho.process.terminate()
            try:
                await asyncio.wait_for(honcho.process.wait(), timeout=30)
            except TimeoutError:
                honcho.process.kill()
    for reader in readers:
        reader.cancel()


async def wait_until_ready(honcho: Honcho) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            if honcho.process.returncode is not None:
                break
            try:
                async with session.get(f"{honcho.url}/healthz") as response:
                    if response.status == 200:
                        # Both workers booted: the second may still be importing.
                        await asyncio.sleep(0.5)
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    pytest.fail("the Procfile's web process did not answer /healthz:\n" + "\n".join(honcho.lines))


def fresh_connection_session() -> aiohttp.ClientSession:
    # A new connection per request lets the kernel hand each one to either worker;
    # the jar must accept cookies from an IP address host.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


def chat_counts(text: str) -> dict[tuple[str, str], float]:
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "chatrelay_chats_total":
                counts[(sample.labels["transport"], sample.labels["outcome"])] = sample.value
    return counts


async def test_two_workers_share_the_session_and_serve_every_transport(
    start_honcho: StartHoncho, fake_openrouter: FakeOpenRouter
) -> None:
    honcho = await start_honcho()
    url = honcho.url
    async with fresh_connection_session() as session:
        async with session.get(f"{url}/") as page:
            assert page.status == 200
            assert page.content_type == "text/html"
        async with session.put(
            f"{url}/api/profile", json={"openrouter_api_key": USER_KEY}
        ) as saved:
            assert (await saved.json())["source"] == "session"
        for round_ in range(4):
            async with session.post(
                f"{url}/api/chat/openrouter", json=chat_body(f"plain {round_}")
            ) as plain:
                assert plain.status == 200
                assert await plain.text() == f"plain {round_}"
            async with session.post(
                f"{url}/api/chat/openrouter",
                json=chat_body(f"sse {round_}"),
                headers={"Accept": "text/event-stream", "X-Forwarded-For": "203.0.113.50"},
            ) as sse:
                body = await sse.text()
                assert body.endswith("\n\n") and "event: done" in body
            async with session.ws_connect(f"{url}/api/chat/ws") as ws:
                frames = await ws_chat(ws, f"w{round_}", f"ws {round_}", timeout_s=10)
            assert frames[-1]["type"] == "done", frames
            assert text_of(frames) == f"ws {round_}"
        metrics_text = await (await session.get(f"{url}/metrics")).text()

    # Whichever worker served them, every chat used the key saved through the profile.
    assert len(fake_openrouter.requests) == 12
    assert all(r.headers["Authorization"] == f"Bearer {USER_KEY}" for r in fake_openrouter.requests)
    chat_lines = await honcho.logged(lambda e: e.get("logger") == "server.chat", 12)
    access = await honcho.logged(lambda e: e.get("logger") == "aiohttp.access", 16)
    workers = {e["pid"] for e in access if e["path"].startswith("/api/chat/")}
    assert len(workers) == 2, f"every chat went to one worker: {workers}"
    # Without BEHIND_PROXY a client's X-Forwarded-For is only a header.
    assert {e["remote"] for e in access} == {"127.0.0.1"}
    # /metrics adds up both workers, whichever one answered.
    counts = chat_counts(metrics_text)
    assert counts[("http", "done")] == 4
    assert counts[("sse", "done")] == 4
    assert counts[("ws", "done")] == 4
    assert counts[("ws", "error")] == 0
    assert len(chat_lines) == 12
    assert {e["transport"] for e in chat_lines} == {"http", "sse", "ws"}
    assert all(e["status"] == 200 and e["tokens"] == 3 for e in chat_lines)
    assert not any(USER_KEY in line for line in honcho.lines)


async def test_sigterm_lets_chats_finish_then_ends_the_rest_and_exits_0(
    start_honcho: StartHoncho, fake_openrouter: FakeOpenRouter
) -> None:
    honcho = await start_honcho(SHUTDOWN_GRACE="2", OPENROUTER_API_KEY=USER_KEY, OPEN_ACCESS="1")
    url = honcho.url
    fake_openrouter.script(sse_reply(["one", " two", " three"], delay_s=0.4), HANG, HANG, HANG)
    async with fresh_connection_session() as session:
        finishing = await session.ws_connect(f"{url}/api/chat/ws")
        await finishing.send_str(orjson.dumps({"id": "finishing", **chat_body()}).decode())
        assert orjson.loads((await finishing.receive(timeout=10)).data)["content"] == "one"
        hanging = await session.ws_connect(f"{url}/api/chat/ws")
        await hanging.send_str(orjson.dumps({"id": "hanging", **chat_body()}).decode())
        assert orjson.loads((await hanging.receive(timeout=10)).data)["content"] == "started"
        sse = await session.post(
            f"{url}/api/chat/openrouter",
            json=chat_body(),
            headers={"Accept": "text/event-stream"},
        )
        assert (await sse.content.readuntil(b"\n\n")).startswith(b"event: delta")
        plain = await session.post(f"{url}/api/chat/openrouter", json=chat_body())
        assert await plain.content.readany() == b"started"

        signalled_at = time.monotonic()
        honcho.terminate_like_the_platform()

        rest = [orjson.loads((await finishing.receive(timeout=15)).data)]
        while rest[-1]["type"] == "delta":
            rest.append(orjson.loads((await finishing.receive(timeout=15)).data))
        assert "".join(f.get("content", "") for f in rest) == " two three"
        assert rest[-1]["type"] == "done" and rest[-1]["finish_reason"] == "stop"
        ended = orjson.loads((await hanging.receive(timeout=15)).data)
        assert ended["type"] == "error" and ended["id"] == "hanging" and ended["status"] == 503
        for ws in (finishing, hanging):
            closing = await ws.receive(timeout=15)
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1001
        sse_rest = await asyncio.wait_for(sse.content.read(), timeout=15)
        assert sse_rest.strip().split(b"\n")[0] == b"event: error"
        assert b'"status":503' in sse_rest
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(plain.content.read(), timeout=15)
        for response in (sse, plain):
            response.close()
        for ws in (finishing, hanging):
            await ws.close()

    assert await asyncio.wait_for(honcho.process.wait(), timeout=30) == 0
    assert time.monotonic() - signalled_at < 30
    assert any("web.1 stopped (rc=0)" in line for line in honcho.lines)
    for upstream in fake_openrouter.requests[1:]:
        await upstream.wait_dropped_by_relay(5)


async def test_two_workers_without_session_secret_share_the_one_made_in_data_dir_and_migrate_once(
    start_honcho: StartHoncho, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    data_dir = tmp_path / "data"
    honcho = await start_honcho(
        SESSION_SECRET="", DATA_DIR=str(data_dir), DATABASE_URL=postgres_server.create_database()
    )
    secret = data_dir / "secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    made = await honcho.logged(lambda e: "SESSION_SECRET generated into" in e.get("message", ""), 1)
    read = await honcho.logged(lambda e: "SESSION_SECRET read from" in e.get("message", ""), 1)
    assert len(made) == 1 and len(read) == 1 and str(secret) in made[0]["message"]
    # Both workers started at once, and the schema was migrated by one of them.
    migrated = await honcho.logged(lambda e: "database migrated to" in e.get("message", ""), 1)
    assert len(migrated) == 1
    async with fresh_connection_session() as session:
        async with session.put(
            f"{honcho.url}/api/profile", json={"openrouter_api_key": USER_KEY}
        ) as saved:
            assert saved.status == 200
        for _ in range(6):
            async with session.get(f"{honcho.url}/api/profile") as profile:
                assert (await profile.json())["source"] == "session"
    access = await honcho.logged(lambda e: e.get("path") == "/api/profile", 7)
    assert len({e["pid"] for e in access}) == 2, "every request went to one worker"
    assert secret.read_text().strip() not in "\n".join(honcho.lines)


async def test_behind_proxy_the_router_headers_set_client_and_scheme(
    start_honcho: StartHoncho,
) -> None:
    honcho = await start_honcho(BEHIND_PROXY="1")
    url = honcho.url
    host = url.removeprefix("http://")
    router = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto": "https"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.put(
            f"{url}/api/profile",
            json={"openrouter_api_key": USER_KEY},
            headers={**router, "Origin": f"https://{host}"},
        ) as saved:
            assert saved.status == 200
            assert saved.cookies["chatrelay_session"]["secure"]
        # The scheme is https now: the same host over http is another origin.
        async with session.put(
            f"{url}/api/profile",
            json={"openrouter_api_key": USER_KEY},
            headers={**router, "Origin": f"http://{host}"},
        ) as other_scheme:
            assert other_scheme.status == 403
        # X-Forwarded-Host never makes another site this one.
        async with session.put(
            f"{url}/api/profile",
            json={"openrouter_api_key": USER_KEY},
            headers={
                **router,
                "X-Forwarded-Host": "evil.example",
                "Origin": "https://evil.example",
            },
        ) as forged:
            assert forged.status == 403
    access = await honcho.logged(lambda e: e.get("path") == "/api/profile", 3)
    assert [e["remote"] for e in access] == ["203.0.113.7"] * 3


async def test_two_workers_share_the_limits_through_redis(
    start_honcho: StartHoncho, redis_url: str
) -> None:
    honcho = await start_honcho(REDIS_URL=redis_url, CHATS_PER_MINUTE="4")
    statuses = []
    async with fresh_connection_session() as session:
        await session.put(f"{honcho.url}/api/profile", json={"openrouter_api_key": USER_KEY})
        # 20 connections: the kernel hands each to whichever worker accepts first, and on a
        # loaded machine 10 of them went to one worker.
        for n in range(20):
            async with session.post(
                f"{honcho.url}/api/chat/openrouter", json=chat_body(f"chat {n}")
            ) as response:
                statuses.append(response.status)
                await response.read()
    access = await honcho.logged(lambda e: e.get("path") == "/api/chat/openrouter", 20)
    workers = {e["pid"] for e in access}
    assert len(workers) == 2, f"every chat went to one worker: {workers}"
    # Both workers served chats, and the client got its 4 a minute in all, not 4 from each.
    assert sorted(statuses) == [200] * 4 + [429] * 16


# --- A restart with Redis: SIGTERM to the worker holding a page's socket -------------

RESTART_WORDS = [f" w{n}" for n in range(40)]


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def serving_pid(candidates: list[int], client_port: int) -> int:
    """The process holding the server side of the connection from `client_port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if int(parts[2].split(":")[1], 16) == client_port:
            inodes.add(parts[9])
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    raise AssertionError("no worker holds the connection")


async def test_sigterm_to_a_worker_moves_the_page_to_the_other_one_and_the_answer_ends_exact(
    start_honcho: StartHoncho, fake_openrouter: FakeOpenRouter, redis_url: str
) -> None:
    fake_openrouter.script(sse_reply(RESTART_WORDS, delay_s=0.05))
    honcho = await start_honcho(REDIS_URL=redis_url, SHUTDOWN_GRACE="10")
    url = honcho.url
    async with fresh_connection_session() as session:
        # The page's profile call: the key, and the session's owner id for its chats.
        async with session.put(f"{url}/api/profile", json={"openrouter_api_key": USER_KEY}):
            pass
        ws = await session.ws_connect(f"{url}/api/chat/ws")
        await ws.send_str(orjson.dumps({"type": "chat", "id": "a", **chat_body()}).decode())
        frames = [await receive(ws, 10)]
        sockname = ws.get_extra_info("sockname")
        worker = serving_pid(children(honcho.web_pid), sockname[1])
        os.kill(worker, signal.SIGTERM)
        while (message := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
            frames.append(orjson.loads(message.data))  # sent before the close
        assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1012
        # The page reconnects: the worker going away stopped listening, the other one answers.
        async with session.ws_connect(f"{url}/api/chat/ws") as again:
            await again.send_str(resume_frame("a", frames[-1]["seq"]))
            frames += await until_end(again, "a", timeout_s=15)
    assert text_of(frames) == "".join(RESTART_WORDS)
    assert frames[-1]["type"] == "done" and frames[-1]["finish_reason"] == "stop"
    assert len(fake_openrouter.requests) == 1
    # The worker that ran the chat finished it within the grace and exited.
    await wait_until(lambda: not os.path.exists(f"/proc/{worker}"), "the worker exited")
