"""The upstream client stream_chat() talks through: one pooled ClientSession for the app,
the chat POST, the models list.

The client owns the wire once: SSE and chunk JSON (wire.py), answers read and the key taken
out (upstream_answer.py), OpenRouter's error shapes (errors.py). aiohttp's tracing says when a
request waits for a free connection of the pool: a chat that timed out there never reached
upstream, so it gets SPEC's 503 "Too many chats at once on this server", not a 504 that
blames upstream. Tracing costs a few calls per request, nothing per token.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace, TracebackType
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web

from server.config import Settings, settings_key
from server.errors import (
    ChatError,
    ServerBusy,
    UpstreamError,
    UpstreamTimeout,
    error_from_response,
    transport_error,
)
from server.relay.openrouter import Batches
from server.relay.redaction import KeyRedactor
from server.relay.request import compact_json
from server.relay.upstream_answer import Answer, SilenceWatchdog, read_capped

# We split lines ourselves (wire.py), so this only bounds what aiohttp buffers per stream
# while a client reads slowly; bigger buffers cost memory, not speed.
READ_BUFSIZE_BYTES = 32 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_MODELS_BODY_BYTES = 32 * 1024 * 1024
BODY_END_WAIT_S = 1.0
LARGE_REQUEST_BYTES = 1024 * 1024


class PoolWait:
    """Passed as a request's `trace_request_ctx`; `queued` while it waits for the pool."""

    queued = False


async def _queued(session: object, context: SimpleNamespace, params: object) -> None:
    if isinstance(context.trace_request_ctx, PoolWait):
        context.trace_request_ctx.queued = True


async def _dequeued(session: object, context: SimpleNamespace, params: object) -> None:
    if isinstance(context.trace_request_ctx, PoolWait):
        context.trace_request_ctx.queued = False


def pool_tracing() -> aiohttp.TraceConfig:
    tracing = aiohttp.TraceConfig()
    tracing.on_connection_queued_start.append(_queued)
    tracing.on_connection_queued_end.append(_dequeued)
    tracing.freeze()
    return tracing


class OpenRouterClient:
    """Talks to OpenRouter (or any OpenAI-compatible server) over one pooled session."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        # Made once, not per chat: every running chat's watchdog and answer hold it.
        self._silence_message = (
            f"OpenRouter sent nothing for {settings.upstream_timeout_s:g} seconds"
        )
        self._chat_url = f"{settings.openrouter_base_url}/chat/completions"

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
            # We ask for no compression and inflate a body ourselves, bounded (upstream_answer).
            auto_decompress=False,
            trace_configs=[pool_tracing()],
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
        headers = {"X-Title": self._settings.app_title, "Accept-Encoding": "identity"}
        if self._settings.app_url:
            headers["HTTP-Referer"] = self._settings.app_url
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    @asynccontextmanager
    async def open_chat(self, api_key: str, payload: dict[str, Any]) -> AsyncIterator[Batches]:
        """POST chat/completions and yield its batches of events; closes the request on exit.

        The key is taken out of everything upstream sends (payloads, events, finish reason,
        usage), and every ChatError raised inside, by upstream or by the caller, leaves with
        it taken out of its message.
        """
        redactor = KeyRedactor(api_key)
        headers = self._headers(api_key)
        headers["Accept"] = "text/event-stream"
        headers["Content-Type"] = "application/json"
        watchdog = SilenceWatchdog(self._settings.upstream_timeout_s, self._silence_message)
        wait = PoolWait()
        try:
            try:
                with watchdog:
                    response = await self.session.post(
                        self._chat_url,
                        data=_request_body(compact_json(payload)),
                        headers=headers,
                        allow_redirects=False,
                        trace_request_ctx=wait,
                    )
            except aiohttp.ClientError as exc:
                raise transport_error(exc, self._silence_message) from None
            except UpstreamTimeout:
                if wait.queued:
                    raise ServerBusy() from None
                raise
            try:
                if response.status != 200:
                    body = await self._read(response, watchdog, MAX_ERROR_BODY_BYTES, strict=False)
                    raise error_from_response(response.status, body, response.headers)
                answer = Answer(
                    response,
                    watchdog,
                    redactor,
                    max_body_bytes=self._settings.max_body_bytes,
                    silence_message=self._silence_message,
                )
                yield answer.batches()
            except BaseException:
                # close(), not release(): an unfinished body must drop the connection at
                # once so the provider stops generating, instead of being drained for the pool.
                response.close()
                raise
            await _release_or_close(response)
        except ChatError as error:
            error.message = redactor.text(error.message)
            raise
        finally:
            watchdog.close()

    async def _read(
        self,
        response: aiohttp.ClientResponse,
        watchdog: SilenceWatchdog,
        limit: int,
        *,
        strict: bool,
    ) -> bytes:
        try:
            with watchdog:
                return await read_capped(response, limit, strict=strict)
        except aiohttp.ClientError as exc:
            raise transport_error(exc, self._silence_message) from None

    async def list_models(self, api_key: str | None) -> list[dict[str, Any]]:
        """GET /models, reduced to the fields chatbot-ui uses, upstream's pricing and its
        longest answer."""
        url = f"{self._settings.openrouter_base_url}/models"
        try:
            timeout = aiohttp.ClientTimeout(total=self._settings.upstream_timeout_s)
            async with self.session.get(
                url, headers=self._headers(api_key), timeout=timeout, allow_redirects=False
            ) as response:
                body = await read_capped(response, MAX_MODELS_BODY_BYTES, strict=True)
                if response.status != 200:
                    raise error_from_response(response.status, body, response.headers)
        except aiohttp.ClientError as exc:
            raise transport_error(exc, self._silence_message) from None
        except TimeoutError:
            raise UpstreamTimeout(self._silence_message) from None
        except ChatError as error:
            error.message = KeyRedactor(api_key).text(error.message)
            raise
        try:
            models = orjson.loads(body)["data"]
            return [
                {
                    "id": m["id"],
                    "name": m.get("name", m["id"]),
                    "context_length": m.get("context_length"),
                    "pricing": m["pricing"] if isinstance(m.get("pricing"), dict) else None,
                    # The longest answer (OpenRouter's top provider's), for the budget's
                    # max_tokens; /api/models shows only the four fields above.
                    "max_completion_tokens": _max_completion_tokens(m),
                    # When upstream made it (Unix seconds), for /v1/models.
                    "created": m["created"] if _is_whole(m.get("created")) else None,
                }
                for m in models
                if isinstance(m, dict) and isinstance(m.get("id"), str)
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UpstreamError(
                "OpenRouter sent a models list that is not JSON of the expected shape"
            ) from None


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _max_completion_tokens(model: dict[str, Any]) -> int | None:
    top = model.get("top_provider")
    tokens = top.get("max_completion_tokens") if isinstance(top, dict) else None
    return tokens if _is_whole(tokens) and tokens else None


def _request_body(body: bytes) -> bytes | io.BytesIO:
    # aiohttp warns that a large bytes body may hold the loop; it writes a BytesIO in parts.
    return body if len(body) <= LARGE_REQUEST_BYTES else io.BytesIO(body)


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


openrouter_key = web.AppKey("openrouter", OpenRouterClient)


async def openrouter_client(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the one upstream client for the app's lifetime."""
    async with OpenRouterClient(app[settings_key]) as client:
        app[openrouter_key] = client
        yield


def setup_openrouter(app: web.Application) -> None:
    app.cleanup_ctx.append(openrouter_client)
