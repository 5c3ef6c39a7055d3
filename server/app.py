"""create_app(settings): chatrelay's routes, middlewares and lifetimes, like a contents page.

Below it: `serve()`, gunicorn's factory of the app (the Procfile's), the session cookie
every route shares (encrypted, Secure whenever the request came over HTTPS), and the refusal
of gunicorn's WSGI workers. The public routes (the chat page, its files, /healthz) are in
server/web/page.py.
"""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web
from aiohttp_session import Session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from server.config import Settings, make_data_dir, settings_key, with_session_secret
from server.metrics import setup_metrics
from server.relay.runs import chat_runs
from server.relay.upstream_client import setup_openrouter
from server.runner import (
    StartupRefused,
    collect_less_often,
    make_runner,
    raise_open_files_limit,
    setup_shutdown,
)
from server.store.redis_conn import setup_redis
from server.store.redis_secret import session_secret_check
from server.telemetry import quiet_known_warnings, quiet_malformed_requests
from server.users.db import setup_database
from server.web.access import access_middleware, proxy_middleware, setup_access
from server.web.accounts import setup_accounts
from server.web.admin import setup_admin
from server.web.budget_gate import setup_budgets
from server.web.budget_routes import setup_budget_routes
from server.web.history_routes import setup_history_routes
from server.web.history_service import setup_history
from server.web.hosts import host_middleware, setup_hosts
from server.web.http_io import error_middleware
from server.web.http_route import setup_http_route
from server.web.identity import setup_identity
from server.web.limits import setup_limits
from server.web.openai_api import setup_openai_api
from server.web.openai_errors import openai_error_middleware
from server.web.page import page_problem, setup_public_routes
from server.web.profile import setup_profile
from server.web.request_clock import request_time_middleware
from server.web.responses_api import setup_responses_api
from server.web.revocation import setup_revocation
from server.web.ws_route import setup_ws_route

log = logging.getLogger(__name__)

SESSION_MAX_AGE_S = 30 * 24 * 3600


def create_app(settings: Settings) -> web.Application:
    # Here, whatever starts the app (python -m server, gunicorn with or without this
    # project's config, a script): an open relay, or a page that cannot load, never serves.
    problem = page_problem() or settings.startup_problem()
    if problem:
        raise StartupRefused(problem)
    # Unset, it is the one kept in DATA_DIR: sessions and stored keys survive a restart.
    make_data_dir(settings)
    settings = with_session_secret(settings)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            # Outermost: the request time counts for every request, whatever answers it.
            request_time_middleware,
            # Before anything answers: a local server refuses names it does not know (421).
            host_middleware,
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
    setup_hosts(app)
    setup_redis(app)
    app.cleanup_ctx.append(session_secret_check)
    setup_database(app)
    # After the database (cleaned up before it), before the runs (whose ends it settles).
    setup_budgets(app)
    setup_identity(app)
    # Here, not only in the start paths: whatever serves the app, a malformed request
    # that anyone can send must not write an ERROR with a traceback.
    quiet_malformed_requests()
    setup_openrouter(app)
    setup_shutdown(app)
    setup_metrics(app)
    setup_profile(app)
    setup_access(app)
    setup_limits(app)
    # Before chat_runs, so cleaned up after it: the runs it ends write their answers first.
    setup_history(app)
    # After the upstream client and the limits, so it is cleaned up first: runs use both.
    app.cleanup_ctx.append(chat_runs)
    # After the runs: it stops before them, and ends what a disabled account runs.
    setup_revocation(app)
    setup_http_route(app)
    setup_ws_route(app)
    setup_history_routes(app)
    setup_accounts(app)
    setup_admin(app)
    setup_budget_routes(app)
    setup_openai_api(app)
    setup_responses_api(app)
    setup_public_routes(app)
    return app


async def serve() -> web.AppRunner:
    """The gunicorn app factory: an AppRunner, so handler_cancellation can be switched on.

    gunicorn's bind is not in the environment: the runner checks each address it is given
    to listen on (GracefulRunner), so `gunicorn -k aiohttp.GunicornWebWorker` without this
    project's config refuses an open relay too.
    """
    quiet_known_warnings()
    raise_open_files_limit()
    collect_less_often()
    return make_runner(create_app(Settings.from_env(os.environ)))


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
    assert secret is not None, "create_app gives it one"
    return SessionCookieStorage(
        secret,
        cookie_name="chatrelay_session",
        httponly=True,
        samesite="Lax",
        max_age=SESSION_MAX_AGE_S,
    )


def wrong_gunicorn_worker() -> str | None:
    """Why the gunicorn worker importing this module cannot serve the app, or None.

    gunicorn's own workers (sync by default) speak WSGI: they would call serve() with each
    request and answer every one with a 500. A worker loads the app by importing this
    module after gunicorn imported its worker class, so the modules loaded tell which.
    """
    if "gunicorn.workers.base" in sys.modules and "aiohttp.worker" not in sys.modules:
        return (
            "chatrelay needs aiohttp's gunicorn worker: run gunicorn server.app:serve "
            "--config python:server.gunicorn_conf (or add -k aiohttp.GunicornWebWorker)"
        )
    return None


if (_worker_problem := wrong_gunicorn_worker()) is not None:
    from gunicorn.errors import AppImportError  # type: ignore[import-untyped]

    # gunicorn's error for an app that cannot load: the master stops with this one line
    # ("App failed to load") instead of running workers that fail every request.
    raise AppImportError(_worker_problem)
