"""JSON in and out of HTTP handlers: body parsing and the `{"message"}` error answers."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from .config import settings_key
from .errors import BadRequest, ChatError, InternalError, PayloadTooLarge

log = logging.getLogger(__name__)


async def read_json(request: web.Request) -> object:
    """Decode the body as JSON whatever its Content-Type: chatbot-ui sends none."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[settings_key].max_body_bytes
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON") from None


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(error: ChatError) -> web.Response:
    response = json_response({"message": error.message}, status=error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api error leaves as `{"message"}` with its status; details stay in the log."""
    try:
        return await handler(request)
    except ChatError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        message = exc.text if exc.text and exc.status != 500 else exc.reason
        response = json_response({"message": message}, status=exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unhandled error method=%s path=%s", request.method, request.path)
        return error_response(InternalError())
