"""The WebSocketResponse chats use: a frame over the limit gets its 1009 close, not a reset."""

from __future__ import annotations

import asyncio

from aiohttp import WSCloseCode, web
from aiohttp.abc import AbstractStreamWriter

from .http_io import clock_of

# The rest of an oversized frame is still on its way when aiohttp refuses it; closing the
# socket on top of it makes the kernel answer with a reset, and the client never reads the
# 1009. So the server first waits until the client has sent nothing for QUIET_S (what it
# sends meanwhile is read and dropped), for LINGER_S at most.
QUIET_S = 0.2
LINGER_S = 5.0
# Served without the request clock (aiohttp's test server), nothing tells when the client
# stopped: a short fixed wait instead.
UNCLOCKED_LINGER_S = 0.5


class ChatWebSocketResponse(web.WebSocketResponse):
    """Reads out an oversized message before closing with MESSAGE_TOO_BIG (1009)."""

    _request: web.BaseRequest | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter:
        self._request = request
        return await super().prepare(request)

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not self.closed:
            await self._linger()
        return await super().close(code=code, message=message, drain=drain)

    async def _linger(self) -> None:
        request = self._request
        clock = clock_of(request) if isinstance(request, web.Request) else None
        if clock is not None:
            await clock.wait_quiet(QUIET_S, LINGER_S)
        else:
            await asyncio.sleep(UNCLOCKED_LINGER_S)
