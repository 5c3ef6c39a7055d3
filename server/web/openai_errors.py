"""Every /v1 error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with
SPEC's status, for the chat completions, the Responses API, and access and routing errors.

The SDKs pick their class from the status (RateLimitError, AuthenticationError, …) and read
`Retry-After`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from server.errors import ChatError, InternalError, code_of

log = logging.getLogger(__name__)

V1_PREFIX = "/v1/"

# OpenAI's `type` for each status it uses; anything else 4xx is a bad request.
ERROR_TYPES = {
    401: "authentication_error",
    # OpenAI's own type for a spent quota (its status is 429; a budget's here is 402).
    402: "insufficient_quota",
    403: "permission_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return ERROR_TYPES.get(status, "invalid_request_error")


def error_body(message: str, status: int, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": None, "code": code}}


def body_of(error: ChatError) -> bytes:
    return orjson.dumps(error_body(error.message, error.status, code_of(error)))


def openai_error_response(error: ChatError) -> web.Response:
    response = web.Response(
        body=body_of(error),
        status=error.status,
        content_type="application/json",
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def sse_error(error: ChatError) -> bytes:
    """An error once the stream has begun: a `data:` line the SDKs raise APIError for."""
    return b"data: " + body_of(error) + b"\n\n"


@web.middleware
async def openai_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1 error, access and routing ones included, leaves in OpenAI's shape."""
    if not request.path.startswith(V1_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ChatError as error:
        return openai_error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"Invalid URL ({request.method} {request.path})"
        else:
            message = exc.reason
        response = web.Response(
            body=orjson.dumps(error_body(message, exc.status, None)),
            status=exc.status,
            content_type="application/json",
        )
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        # The path is the client's: not logged, so it cannot forge a log line.
        log.exception("unhandled /v1 error method=%s", request.method)
        return openai_error_response(InternalError())
