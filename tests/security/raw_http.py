"""Raw-socket clients for the slow-client tests: what aiohttp's client would never send."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

ServeFn = Callable[..., Coroutine[Any, Any, int]]
"""Start chatrelay with Settings overrides behind its own runner; its port."""


@dataclass
class Answer:
    """All the server sent on one connection until it closed it, or until the test gave up."""

    data: bytes
    closed: bool

    @property
    def status(self) -> int:
        return int(self.data.split(b" ", 2)[1]) if self.data.startswith(b"HTTP/1.") else 0

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]


async def trickle(
    port: int, head: bytes, drip: bytes = b"", every_s: float = 0.2, wait_s: float = 8.0
) -> Answer:
    """Send `head`, then `drip` every `every_s` for as long as the server takes it; read
    what comes back until the server closes the connection (or `wait_s` passes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def drip_forever() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            while drip:
                await asyncio.sleep(every_s)
                writer.write(drip)
                await writer.drain()

    sender = asyncio.create_task(drip_forever())
    data = bytearray()
    closed = False
    try:
        async with asyncio.timeout(wait_s):
            while read := await reader.read(65536):
                data += read
            closed = True
    except TimeoutError:
        pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    return Answer(bytes(data), closed)


def open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
