"""A huge scripted answer and a client that reads it slowly: what the backpressure and
slow-reader tests share (tests/security)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Iterator

from tests.conftest import Client
from tests.fake_openrouter import USAGE, Reply, Step, chunk, event

EVENTS = 2000
PIECE_CHARS = 32 * 1024
ANSWER_BYTES = EVENTS * PIECE_CHARS  # 64 MiB: far more than any buffer on the way
STALL_LIMIT_BYTES = 24 * 1024 * 1024
CLIENT_RCVBUF = 32 * 1024


def piece(n: int) -> str:
    return f"<{n:06d}>".ljust(PIECE_CHARS, "abcdefgh"[n % 8])


class CountedSteps(list[Step]):
    """The reply's steps, counting the bytes upstream has handed to its socket so far."""

    def __init__(self, steps: Iterable[Step]) -> None:
        super().__init__(steps)
        self.sent = 0

    def __iter__(self) -> Iterator[Step]:
        for step in super().__iter__():
            yield step
            if isinstance(step, bytes):
                self.sent += len(step)


def huge_reply() -> tuple[Reply, CountedSteps]:
    steps = CountedSteps(
        [event(chunk(piece(n))) for n in range(EVENTS)]
        + [event(chunk(finish_reason="stop", usage=USAGE)), event("[DONE]")]
    )
    return Reply(steps=steps), steps


async def stalled(steps: CountedSteps) -> int:
    """Wait until upstream has written nothing new for half a second; what it sent by then."""
    last = -1
    for _ in range(200):
        await asyncio.sleep(0.5)
        if steps.sent == last:
            return last
        last = steps.sent
    raise AssertionError("upstream never stalled")


async def slow_reader(client: Client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose receive buffer is small, so the kernel absorbs little of the answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    sock.setblocking(False)
    assert client.port is not None
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", client.port))
    return await asyncio.open_connection(sock=sock, limit=CLIENT_RCVBUF)


def post_raw(writer: asyncio.StreamWriter, path: str, body: bytes) -> None:
    """A POST of `body` written by hand on a slow_reader connection."""
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (path.encode(), len(body), body)
    )
