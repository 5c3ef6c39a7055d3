"""create_app(settings): chatrelay's routes, middlewares and lifetimes, like a contents page.

Also the session cookie they all share (encrypted, Secure whenever the request came over
HTTPS), and `serve()`, gunicorn's factory of the app, for the Procfile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp_session import Session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from .access import access_middleware, setup_access
from .chats_route import setup_chats_route
from .config import Settings, settings_key
from .http_route import setup_http_route
from .limits import setup_limits
from .logs import quiet_known_warnings, quiet_malformed_requests
from .metrics import setup_metrics
from .openai_api import openai_error_middleware, setup_openai_api
from .openrouter import OpenRouterClient, openrouter_key
from .page import setup_page
from .proxy import proxy_middleware
from .redis_conn import setup_redis
from .request_time import request_time_middleware
from .routes import setup_routes
from .runner import make_runner, raise_open_files_limit, setup_shutdown
from .runs import chat_runs
from .web_json import error_middleware
from .ws_route import setup_ws_route

log = logging.getLogger(__name__)

SESSION_MAX_AGE_S = 30 * 24 * 3600


class SessionCookieStorage(EncryptedCookieStorage):
    """Fernet-encrypted cookie storage; `Secure` follows the request's scheme.

    aiohttp-session fixes `secure` once per storage, but one server answers both plain
    loopback HTTP and HTTPS behind a proxy (whose scheme a proxy middleware restores in
    `request.scheme`): a Secure cookie over plain HTTP would never come back.
    """

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        await super().save_session(request, response, session)
        morsel = response.cookies.get(self.cookie_name)
        if morsel is not None and request.secure:
            morsel["secure"] = True


def session_storage(settings: Settings) -> SessionCookieStorage:
    secret = settings.session_secret
    if secret is None:
        log.warning("SESSION_SECRET is not set: saved keys are lost when this process restarts")
        secret = Fernet.generate_key().decode()
    return SessionCookieStorage(
        secret,
        cookie_name="chatrelay_session",
        httponly=True,
        samesite="Lax",
        max_age=SESSION_MAX_AGE_S,
    )


async def openrouter_client(app: web.Application) -> AsyncIterator[None]:
    async with OpenRouterClient(app[settings_key]) as client:
        app[openrouter_key] = client
        yield


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            # Outermost: the request time counts for every request, whatever answers it.
            request_time_middleware,
            # Every later middleware and handler sees the forwarded scheme and client.
            proxy_middleware,
            error_middleware,
            # Inside error_middleware: /v1 errors, access ones included, in OpenAI's shape.
            openai_error_middleware,
            session_middleware(session_storage(settings)),
            access_middleware,
        ],
    )
    app[settings_key] = settings
    setup_redis(app)
    # Here, not only in the start paths: whatever serves the app, a malformed request
    # that anyone can send must not write an ERROR with a traceback.
    quiet_malformed_requests()
    app.cleanup_ctx.append(openrouter_client)
    setup_shutdown(app)
    setup_metrics(app)
    setup_routes(app)
    setup_access(app)
    setup_limits(app)
    # After the upstream client and the limits, so it is cleaned up first: runs use both.
    app.cleanup_ctx.append(chat_runs)
    setup_http_route(app)
    setup_ws_route(app)
    setup_openai_api(app)
    setup_chats_route(app)
    setup_page(app)
    return app


async def serve() -> web.AppRunner:
    """The gunicorn app factory: an AppRunner, so handler_cancellation can be switched on."""
    quiet_known_warnings()
    raise_open_files_limit()
    return make_runner(create_app(Settings.from_env(os.environ)))
