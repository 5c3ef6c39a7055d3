"""Whether a request waits for a free connection of the upstream pool.

aiohttp's tracing says when the wait starts and ends; a chat that timed out there never
reached upstream, so it gets SPEC's 503 "Too many chats at once on this server", not a
504 that blames upstream. Tracing costs a few calls per request, nothing per token.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp


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
