"""What clients and upstream control cannot forge a log line, in text or LOG_FORMAT=json;
malformed requests are one INFO line without a traceback; a client that leaves is no error.

`python -m server` runs as its own process with its own logging, and the test reads its
stderr as an operator's log shipper would, line by line.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest

from tests.conftest import SERVER_KEY, chat_body
from tests.fake_openrouter import FakeOpenRouter, sse_reply
from tests.server_process import ROOT

pytestmark = pytest.mark.subprocess

FORGED = "2026-01-01 00:00:00,000 ERROR server.chat FORGED"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+ ")
# Each way a value could end a line: LF, CR, NEL, Unicode's line separator.
BREAKS = ["\n", "\r", "\x85", "\u2028"]


@dataclass
class Server:
    url: str
    process: asyncio.subprocess.Process
    log_format: str
    lines: list[str] = field(default_factory=list)

    def entries(self) -> list[tuple[str, str]]:
        """(level, message) of each line; a line that is not one of the server's fails."""
        parsed = []
        for line in self.lines:
            if self.log_format == "json":
                entry = orjson.loads(line)
                parsed.append((entry["level"], entry["message"]))
            else:
                match = TEXT_LINE.match(line)
                assert match, f"not a log line of the server: {line!r}"
                parsed.append((match.group(1), line[match.end() :]))
        return parsed

    def count(self, text: str) -> int:
        return sum(text in message for _, message in self.entries())

    async def wait_for(self, found: Callable[[list[str]], bool], timeout_s: float = 5) -> None:
        async with asyncio.timeout(timeout_s):
            while not found(self.lines):  # noqa: ASYNC110 (lines come from another task)
                await asyncio.sleep(0.05)


async def collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    # Split as the str.splitlines() of a log shipper would: any line break counts.
    buffer = ""
    while data := await stream.read(65536):
        buffer += data.decode("utf-8", "replace")
        *complete, buffer = re.split(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", buffer)
        lines += complete
    if buffer:
        lines.append(buffer)


@pytest.fixture(params=["text", "json"])
async def server(
    request: pytest.FixtureRequest, fake_openrouter: FakeOpenRouter, unused_tcp_port: int
) -> AsyncIterator[Server]:
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "ACCESS_TOKEN")}
    env |= {
        "OPENROUTER_BASE_URL": fake_openrouter.url,
        "OPENROUTER_API_KEY": SERVER_KEY,
        "LOG_FORMAT": request.param,
        "LOG_LEVEL": "INFO",
    }
    argv = [sys.executable, "-m", "server", "--port", str(unused_tcp_port)]
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    served = Server(f"http://127.0.0.1:{unused_tcp_port}", process, request.param)
    reader = asyncio.create_task(collect(process.stderr, served.lines))
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"{served.url}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    await served.wait_for(lambda lines: any("/healthz" in line for line in lines))
    served.lines.clear()
    yield served
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    await reader


def forged_path(line_break: str) -> str:
    encoded = "".join(f"%{b:02X}" for b in line_break.encode())
    return "/nope" + encoded + FORGED.replace(" ", "%20")


def assert_nothing_forged(server: Server) -> None:
    entries = server.entries()  # every line parses as one of the server's
    assert not any(line.startswith(FORGED) for line in server.lines)
    for _, message in entries:
        if "FORGED" in message:
            # The break before it is written as an escape, on the same line.
            assert re.search(r"\\(x0a|x0d|x85|u2028)2026-01-01 00:00:00,000 ERROR", message), (
                message
            )


async def test_paths_ids_models_and_finish_reasons_cannot_forge_lines(
    server: Server, fake_openrouter: FakeOpenRouter
) -> None:
    async with aiohttp.ClientSession() as session:
        for line_break in BREAKS:
            async with session.get(server.url + forged_path(line_break)) as response:
                assert response.status == 404
        fake_openrouter.script(
            *[sse_reply(["ok"], finish_reason="stop" + b + FORGED) for b in BREAKS]
        )
        async with session.ws_connect(f"{server.url}/api/chat/ws") as ws:
            for n, line_break in enumerate(BREAKS):
                frame = {
                    "id": f"c{n}{line_break}{FORGED}",
                    **chat_body(model="m" + line_break + FORGED),
                }
                await ws.send_str(orjson.dumps(frame).decode())
                while orjson.loads((await ws.receive(timeout=5)).data)["type"] != "done":
                    pass
    await server.wait_for(lambda _: server.count("chat end") == len(BREAKS))
    assert server.count("/nope") == len(BREAKS)
    assert_nothing_forged(server)


async def test_malformed_requests_are_one_info_line_each_without_traceback(
    server: Server,
) -> None:
    port = int(server.url.rpartition(":")[2])
    garbage = [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"POST /api/chat/openrouter HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\nabcde",
        b"POST /api/chat/openrouter HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"\r\nzz\r\n",
    ]
    for request in garbage:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.")
        writer.close()
    await server.wait_for(lambda lines: len(lines) >= len(garbage))
    await asyncio.sleep(0.3)  # anything more it would write comes now
    entries = server.entries()
    assert len(entries) == len(garbage), server.lines
    assert all(level == "INFO" and " 400 " in message for level, message in entries)
    assert not any("Traceback" in line for line in server.lines)


async def test_clients_leaving_mid_stream_are_no_errors(
    server: Server, fake_openrouter: FakeOpenRouter
) -> None:
    leavers = 20
    # Fast answers: the client leaves while the relay is writing, the race where a write
    # to the closing connection fails before aiohttp notices that the client is gone.
    fake_openrouter.script(*[sse_reply([f"t{i} " for i in range(3000)]) for _ in range(leavers)])
    async with aiohttp.ClientSession() as session:
        for _ in range(leavers):
            response = await session.post(
                f"{server.url}/api/chat/openrouter", data=orjson.dumps(chat_body())
            )
            assert response.status == 200
            await response.content.readany()
            response.close()  # gone mid-answer
    await server.wait_for(lambda _: server.count("chat end") == leavers)
    await asyncio.sleep(0.3)
    entries = server.entries()
    assert [m for level, m in entries if level != "INFO"] == []
    assert not any(" 500 " in message or "status=500" in message for _, message in entries)
    # Left mid-answer, the chat is a client's cancel, unless its run had read the whole
    # (fast) answer from upstream before the client left: a run is not paced by its client.
    assert server.count("cancelled=True") + server.count("outcome=done") == leavers
