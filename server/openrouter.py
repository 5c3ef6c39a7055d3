"""The upstream client: one ClientSession; OpenRouter's SSE decoded into batches of events.

It owns the wire: SSE, chunk JSON, OpenRouter's error shapes and key redaction, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from .chunks import Batch, read_batch
from .config import Settings
from .errors import ChatError, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from .sse import SSEDecoder
from .watchdog import SilenceWatchdog

log = logging.getLogger(__name__)

# We split lines ourselves (sse.py), so this only bounds what aiohttp buffers per stream
# while a client reads slowly; bigger buffers cost memory, not speed.
READ_BUFSIZE_BYTES = 32 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
BODY_END_WAIT_S = 1.0


Batches = AsyncIterator[Batch]


class Upstream(Protocol):
    """What the chat core needs from OpenRouter; tests may pass a scripted fake."""

    def open_chat(
        self, api_key: str, payload: dict[str, Any]
    ) -> AbstractAsyncContextManager[Batches]: ...


def parse_retry_after(value: str | None) -> int | None:
    """Seconds from a `Retry-After` header; HTTP dates are rare here and ignored."""
    if value is None:
        return None
    try:
        return max(0, round(float(value)))
    except ValueError:
        return None


def error_from_response(status: int, body: bytes, headers: CIMultiDictProxy[str]) -> UpstreamError:
    """Turn OpenRouter's `{"error": {"message", "code"}}` answer into an UpstreamError."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    error: object = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        readable = isinstance(error, str) or (
            isinstance(error, dict) and isinstance(error.get("message"), str)
        )
        if not readable:
            error = parsed.get("message") if isinstance(parsed.get("message"), str) else None
    return UpstreamError.from_body(
        error,
        status=status if 400 <= status <= 599 else 502,
        retry_after=parse_retry_after(headers.get("Retry-After")),
        default_message=f"OpenRouter answered with status {status}",
    )


def redact(text: str, api_key: str) -> str:
    """Some providers echo the key they refused; it must never reach a user or a log."""
    return text.replace(api_key, "[redacted]") if api_key else text


class OpenRouterClient:
    """Talks to OpenRouter (or any OpenAI-compatible server) over one pooled session."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        settings = self._settings
        self._session = aiohttp.ClientSession(
            # total=None: a long answer must not be cut; SilenceWatchdog is the silence limit.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=settings.upstream_connect_timeout_s
            ),
            # Every running chat holds one connection (and up to 2 x read_bufsize of unread
            # answer while its client is slow): the cap bounds both. Over it, chats queue.
            connector=aiohttp.TCPConnector(
                limit=settings.upstream_max_connections,
                limit_per_host=settings.upstream_max_connections,
            ),
            read_bufsize=READ_BUFSIZE_BYTES,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("OpenRouterClient used outside `async with`")
        return self._session

    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"X-Title": self._settings.app_title}
        if self._settings.app_url:
            headers["HTTP-Referer"] = self._settings.app_url
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    @asynccontextmanager
    async def open_chat(self, api_key: str, payload: dict[str, Any]) -> AsyncIterator[Batches]:
        """POST chat/completions and yield its batches of events; closes the request on exit.

        Every ChatError raised inside, by upstream or by the caller, leaves with the key
        redacted from its message.
        """
        headers = self._headers(api_key)
        headers["Accept"] = "text/event-stream"
        headers["Content-Type"] = "application/json"
        url = f"{self._settings.openrouter_base_url}/chat/completions"
        watchdog = SilenceWatchdog(self._settings.upstream_timeout_s, self._silence_message())
        try:
            try:
                with watchdog:
                    response = await self.session.post(
                        url, data=orjson.dumps(payload), headers=headers
                    )
            except aiohttp.ClientError as exc:
                raise self._transport_error(exc) from None
            try:
                if response.status != 200:
                    with watchdog:
                        body = await _read_capped(response)
                    raise error_from_response(response.status, body, response.headers)
                yield self._batches(response, watchdog)
            except BaseException:
                # close(), not release(): an unfinished body must drop the connection at
                # once so the provider stops generating, instead of being drained for the pool.
                response.close()
                raise
            await _release_or_close(response)
        except ChatError as error:
            error.message = redact(error.message, api_key)
            raise
        finally:
            watchdog.close()

    async def _batches(
        self, response: aiohttp.ClientResponse, watchdog: SilenceWatchdog
    ) -> Batches:
        """The events of each read; a read that completes no SSE event yields nothing."""
        content = response.content
        decoder = SSEDecoder()
        while True:
            try:
                with watchdog:
                    read = await content.readany()
            except aiohttp.ClientError as exc:
                raise self._transport_error(exc) from None
            if not read:
                break
            payloads = decoder.feed(read)
            if payloads:
                yield read_batch(payloads)
        payloads = decoder.close()
        if payloads:
            yield read_batch(payloads)

    def _silence_message(self) -> str:
        return f"OpenRouter sent nothing for {self._settings.upstream_timeout_s:g} seconds"

    def _transport_error(self, exc: aiohttp.ClientError) -> UpstreamError:
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return UpstreamTimeout(self._silence_message())
        if isinstance(exc, aiohttp.ClientPayloadError):
            return UpstreamError("OpenRouter closed the stream before it finished")
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or str(exc.os_error)
        else:
            reason = str(exc) or type(exc).__name__
        return UpstreamUnreachable(f"Could not reach OpenRouter: {reason}")

    async def list_models(self, api_key: str | None) -> list[dict[str, Any]]:
        """GET /models, reduced to the fields chatbot-ui uses: id, name, context_length."""
        url = f"{self._settings.openrouter_base_url}/models"
        try:
            timeout = aiohttp.ClientTimeout(total=self._settings.upstream_timeout_s)
            async with self.session.get(
                url, headers=self._headers(api_key), timeout=timeout
            ) as response:
                body = await _read_capped(response, limit=32 * 1024 * 1024)
                if response.status != 200:
                    raise error_from_response(response.status, body, response.headers)
        except aiohttp.ClientError as exc:
            raise self._transport_error(exc) from None
        except TimeoutError:
            raise UpstreamTimeout(self._silence_message()) from None
        except ChatError as error:
            error.message = redact(error.message, api_key or "")
            raise
        try:
            models = orjson.loads(body)["data"]
            return [
                {
                    "id": m["id"],
                    "name": m.get("name", m["id"]),
                    "context_length": m.get("context_length"),
                }
                for m in models
                if isinstance(m, dict) and isinstance(m.get("id"), str)
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UpstreamError(
                "OpenRouter sent a models list that is not JSON of the expected shape"
            ) from None


async def _release_or_close(response: aiohttp.ClientResponse) -> None:
    """After [DONE] the body's last chunk is due at once: wait briefly for it, so the
    connection goes back to the pool and the next chat skips a TCP and TLS handshake."""
    try:
        async with asyncio.timeout(BODY_END_WAIT_S):
            while await response.content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        response.close()
        return
    response.release()


async def _read_capped(
    response: aiohttp.ClientResponse, limit: int = MAX_ERROR_BODY_BYTES
) -> bytes:
    body = bytearray()
    async for read in response.content.iter_any():
        body += read
        if len(body) > limit:
            break
    return bytes(body)


openrouter_key = web.AppKey("openrouter", OpenRouterClient)
