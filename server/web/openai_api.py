"""/v1: OpenAI's chat completions and models routes over the same core, errors in OpenAI's shape.

`stream: true` relays upstream's chunks as upstream sent them; `stream: false` answers one
chat.completion assembled from the same stream, so one upstream client and the core read
every chat for usage and errors, and a client leaving closes upstream at once either way.
Every /v1 error leaves in OpenAI's shape (openai_errors.py).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, aclosing

import orjson
from aiohttp import web

from server.config import settings_key
from server.errors import ChatError, ClientTooSlow, InternalError
from server.metrics import ChatObserver, metrics_key
from server.relay.completion import CompletionBuilder
from server.relay.openrouter import stream_chat
from server.relay.request import CompletionRequest, parse_completion_request
from server.relay.runs import running_chat
from server.relay.upstream_client import openrouter_key
from server.store.events import Chunks, Done
from server.web.budget_gate import Meter, decoded, metered, requested_tokens, with_tokens
from server.web.history_service import signed_in_account_id
from server.web.http_io import expect_within_limit, json_response, read_json
from server.web.http_route import LazyStart, client_writes
from server.web.limits import ChatLease, admit_chat
from server.web.openai_errors import openai_error_response, sse_error
from server.web.profile import (
    Profile,
    cached_models,
    check_api_key,
    is_header_safe,
    request_profile,
)

log = logging.getLogger(__name__)

DONE_LINE = b"data: [DONE]\n\n"
# An account's personal token (SPEC "Accounts"): it opens the door, it is no upstream key.
PERSONAL_TOKEN_PREFIX = "crt_"

ChunkStream = AsyncGenerator[list[Chunks | Done], None]
Held = AbstractAsyncContextManager[None]


async def caller_profile(request: web.Request) -> Profile:
    """The profile's key (session, else server), else the caller's own Bearer key.

    SPEC: the key used upstream is the profile's; the SDKs need some `api_key`, so a Bearer
    next to a server key is taken for a placeholder (README says so). The access check ran
    first: with ACCESS_TOKEN set, a Bearer that is the token is not a key, nor is an
    account's personal token (`crt_…`), which upstream must never see.
    """
    profile = await request_profile(request)
    if profile.api_key:
        return profile
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    key = presented.strip()
    if (
        scheme.lower() == "bearer"
        and key
        and key != request.app[settings_key].access_token
        and not key.startswith(PERSONAL_TOKEN_PREFIX)
        and is_header_safe(key)
    ):
        return Profile(key, "bearer")
    return profile


async def chat_completions(request: web.Request) -> web.StreamResponse:
    completion = parse_completion_request(await read_json(request))
    profile = await caller_profile(request)
    api_key = check_api_key(profile)
    lease = await admit_chat(request, profile)
    fields = completion.fields
    caps = ("max_tokens", "max_completion_tokens")
    requested = requested_tokens(fields, *caps)
    account_id = await signed_in_account_id(request)
    # Decoded only to price an account's prompt, and not kept: a running chat holds its
    # request encoded, not decoded (a body of many tiny parts decodes to ~20x its size).
    messages = decoded(fields["messages"]) if account_id is not None else None
    meter = await metered(
        request, profile, lease, account_id, completion.model, messages, requested
    )
    del messages
    if meter is not None and meter.max_tokens is not None and meter.max_tokens != requested:
        fields = with_tokens(fields, meter.max_tokens, *caps)
        completion = dataclasses.replace(completion, fields=fields)
    observer = ChatObserver(secrets.token_hex(6), "v1", completion.model, request.app[metrics_key])
    observer.account_id = profile.account_id
    chunks = stream_chat(
        completion,
        api_key,
        request.app[openrouter_key],
        observer,
        relay_chunks=True,
        max_chars=None if meter is None else meter.max_chars,
    )
    # Stateless, not a durable run: the chat lives exactly as long as this request.
    held = running_chat(request.app, observer)
    if meter is not None:
        meter.observer = observer
    try:
        if completion.stream:
            return await stream_completion(request, completion, chunks, lease, held, meter)
        return await answer_completion(request, chunks, lease, held, meter)
    finally:
        if meter is not None:
            await meter.settle(observer.usage, observer.chars)


def sse_lines(payloads: list[bytes]) -> bytes:
    """Upstream's payloads as `data:` events, byte for byte."""
    body = b"\n\ndata: ".join(payloads)
    if body.count(b"\n") != 2 * (len(payloads) - 1):
        # An event of several `data:` lines: each of its lines keeps the field name.
        body = b"\n\ndata: ".join(p.replace(b"\n", b"\ndata: ") for p in payloads)
    return b"data: " + body + b"\n\n"


def without_usage_chunks(payloads: list[bytes]) -> list[bytes]:
    """Drop the usage-only chunk (empty `choices`) that the core asked for and the client
    did not: OpenAI sends it only on request, and clients index `choices[0]`."""
    kept = []
    for payload in payloads:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            kept.append(payload)
            continue
        if not (isinstance(chunk, dict) and "usage" in chunk and not chunk.get("choices")):
            kept.append(payload)
    return kept


async def stream_completion(
    request: web.Request,
    completion: CompletionRequest,
    chunks: ChunkStream,
    lease: ChatLease,
    held: Held,
    meter: Meter | None = None,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # Proxies such as nginx buffer streamed bodies unless told not to.
            "X-Accel-Buffering": "no",
        }
    )
    # The 200 goes out with the first chunk: an error before it gets its own status, which
    # is what makes the SDKs raise RateLimitError, AuthenticationError, ….
    start = LazyStart(request, response, request.app[settings_key].first_byte_s)
    writes = client_writes(request)
    answered = False
    try:
        async with lease, held, aclosing(chunks):
            async for events in chunks:
                for event in events:
                    if isinstance(event, Done):
                        if meter is not None:  # settled before the client hears the end
                            await meter.settle_done(event.usage)
                        with writes:
                            await start.start()
                            await response.write(DONE_LINE)
                            # Complete: end the body while the core winds upstream down for reuse.
                            await response.write_eof()
                        answered = True
                        continue
                    payloads = event.payloads
                    if event.has_usage and not completion.wants_usage:
                        payloads = without_usage_chunks(payloads)
                    if not payloads:  # held back with text that may begin the key
                        continue
                    with writes:
                        await start.start()
                        await response.write(sse_lines(payloads))
        return response
    except ClientTooSlow as error:
        return drop_slow_client(request, response, error)
    except ConnectionResetError:
        # The client left mid-stream: the core logs the chat as cancelled; not a failure.
        return response
    except ChatError as error:
        return await _fail_stream(request, response, start, error, answered)
    except Exception:
        log.exception("v1 chat failed")
        return await _fail_stream(request, response, start, InternalError(), answered)
    finally:
        writes.close()
        await start.close()


def drop_slow_client(
    request: web.Request, response: web.StreamResponse, error: ClientTooSlow
) -> web.StreamResponse:
    # Telling it would wait on the same client: drop the connection instead.
    log.info("v1 chat stopped: %s", error.message)
    if request.transport is not None:
        request.transport.abort()
    return response


async def _fail_stream(
    request: web.Request,
    response: web.StreamResponse,
    start: LazyStart,
    error: ChatError,
    answered: bool,
) -> web.StreamResponse:
    if answered:  # e.g. a shutdown while upstream's connection was being wound down
        return response
    if not start.started:
        return openai_error_response(error)
    await start.start()
    # After the 200: an `error` object in a data line, as OpenAI does, then the end.
    await response.write(sse_error(error))
    await response.write_eof()
    return response


async def answer_completion(
    request: web.Request,
    chunks: ChunkStream,
    lease: ChatLease,
    held: Held,
    meter: Meter | None = None,
) -> web.StreamResponse:
    builder = CompletionBuilder()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    writes = client_writes(request)
    try:
        async with lease, held, aclosing(chunks):
            async for events in chunks:
                for event in events:
                    if isinstance(event, Chunks):
                        builder.feed(event.payloads)
                        continue
                    if meter is not None:  # settled before the client hears the end
                        await meter.settle_done(event.usage)
                    body = orjson.dumps(builder.completion())
                    response.content_length = len(body)
                    with writes:
                        await response.prepare(request)
                        await response.write(body)
                        # Answered: the client need not wait while upstream is wound down.
                        await response.write_eof()
        return response
    except ClientTooSlow as error:
        return drop_slow_client(request, response, error)
    except ConnectionResetError:
        return response
    except ChatError as error:
        if response.prepared:
            return response
        return openai_error_response(error)
    except Exception:
        log.exception("v1 chat failed")
        if response.prepared:
            return response
        return openai_error_response(InternalError())
    finally:
        writes.close()


async def list_models(request: web.Request) -> web.Response:
    """OpenAI's model list, from the same cached upstream list as /api/models."""
    profile = await caller_profile(request)
    models = await cached_models(request, profile.api_key)
    return json_response(
        {
            "object": "list",
            "data": [
                {
                    "id": model["id"],
                    "object": "model",
                    "created": model.get("created") or 0,
                    # OpenRouter's ids are vendor/model.
                    "owned_by": model["id"].partition("/")[0] if "/" in model["id"] else "system",
                }
                for model in models
            ],
        }
    )


def setup_openai_api(app: web.Application) -> None:
    app.router.add_post(
        "/v1/chat/completions", chat_completions, expect_handler=expect_within_limit
    )
    app.router.add_get("/v1/models", list_models)
