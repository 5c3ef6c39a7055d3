"""Who may use /api/*: the ACCESS_TOKEN (Bearer header or logged-in session) and Origin checks."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web
from aiohttp_session import get_session, new_session

from .config import Settings, settings_key
from .errors import AccessDenied
from .profile import SESSION_KEY_FIELD
from .web_json import Handler, read_json

ACCESS_FIELD = "access"
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
PUBLIC_API_PATHS = frozenset({"/api/login"})


def token_digest(token: str) -> str:
    """What a logged-in session holds: changing ACCESS_TOKEN logs every session out."""
    return hashlib.sha256(b"chatrelay-access:" + token.encode()).hexdigest()


def is_cross_site(request: web.Request, settings: Settings) -> bool:
    # Browsers always send Origin on WebSocket handshakes and unsafe fetches; refusing other
    # sites blocks cross-site WebSocket hijacking and credit-spending drive-by POSTs.
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site") == "cross-site"
    origin = origin.rstrip("/")
    return origin != f"{request.scheme}://{request.host}" and origin not in settings.allowed_origins


async def has_access(request: web.Request, settings: Settings) -> bool:
    token = settings.access_token
    if token is None:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    ):
        return True
    session = await get_session(request)
    saved = session.get(ACCESS_FIELD)
    return isinstance(saved, str) and hmac.compare_digest(saved, token_digest(token))


def needs_check(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if needs_check(request):
        settings = request.app[settings_key]
        is_ws = request.path == "/api/chat/ws"
        if (request.method in STATE_CHANGING or is_ws) and is_cross_site(request, settings):
            raise AccessDenied("Cross-site requests are not allowed", status=403)
        if request.path not in PUBLIC_API_PATHS and not await has_access(request, settings):
            raise AccessDenied("Access token required")
    return await handler(request)


async def login(request: web.Request) -> web.Response:
    settings = request.app[settings_key]
    data = await read_json(request)
    presented = data.get("token") if isinstance(data, dict) else None
    if settings.access_token is None:
        return web.Response(status=204)
    if not isinstance(presented, str) or not hmac.compare_digest(
        presented.encode(), settings.access_token.encode()
    ):
        raise AccessDenied("Invalid access token")
    old = await get_session(request)
    saved_key = old.get(SESSION_KEY_FIELD)
    # A fresh session on login: a cookie planted before it cannot ride on the new rights.
    session = await new_session(request)
    if saved_key:
        session[SESSION_KEY_FIELD] = saved_key
    session[ACCESS_FIELD] = token_digest(settings.access_token)
    return web.Response(status=204)


def setup_access(app: web.Application) -> None:
    app.router.add_post("/api/login", login)
