"""create_app(settings): chatrelay's routes, middlewares and lifetimes, like a contents page.

Below it: `serve()`, gunicorn's factory of the app (the Procfile's), the session cookie
every route shares (encrypted, Secure whenever the request came over HTTPS), and the public
routes: the chat page with its static files and vendor libraries, and /healthz.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path, PurePath

from aiohttp import web
from aiohttp_session import Session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from server.config import Settings, settings_key, with_session_secret
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
from server.web.http_io import error_middleware, json_response
from server.web.http_route import setup_http_route
from server.web.identity import setup_identity
from server.web.limits import setup_limits
from server.web.openai_api import setup_openai_api
from server.web.openai_errors import openai_error_middleware
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


# The page and the libraries it loads live inside the package: an installed wheel is the whole
# product, and running it needs no Node.js.
STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = Path(__file__).resolve().parent / "vendor"

# The page's libraries, served by these names from vendor/: exact copies of these files of the
# npm packages package-lock.json pins, committed (`make vendor` copies them from node_modules;
# tests/unit/test_vendor_files.py holds them equal). Nothing else of npm is served.
VENDOR_FILES = {
    "marked.js": "marked/lib/marked.esm.js",
    "purify.js": "dompurify/dist/purify.es.mjs",
    "highlight.js": "@highlightjs/cdn-assets/es/highlight.min.js",
    "highlight-light.css": "@highlightjs/cdn-assets/styles/github.min.css",
    "highlight-dark.css": "@highlightjs/cdn-assets/styles/github-dark.min.css",
    "idb.js": "idb/build/index.js",
    "katex.js": "katex/dist/katex.mjs",
}
# Named by the served name: the files' own suffixes (.mjs) are unknown to some MIME tables, and
# with nosniff a module script of the wrong type does not run.
VENDOR_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}

# The page renders model output: even if something slipped past the sanitizer, the CSP lets
# no inline or foreign script run, and the page can only talk to its own origin. Images: its
# own and data: URLs (the user's attached images); none from other sites (a tracking pixel).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    # Revalidate every time (ETag / Last-Modified make that cheap): a new deploy shows at once.
    "Cache-Control": "no-cache",
}


def page_file(path: Path, content_type: str | None = None) -> web.FileResponse:
    headers = (
        PAGE_HEADERS if content_type is None else {**PAGE_HEADERS, "Content-Type": content_type}
    )
    return web.FileResponse(path, headers=headers)


async def index(request: web.Request) -> web.FileResponse:
    return page_file(STATIC_DIR / "index.html")


async def static_file(request: web.Request) -> web.FileResponse:
    path = (STATIC_DIR / request.match_info["path"]).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        raise web.HTTPNotFound()
    return page_file(path)


async def vendor_file(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in VENDOR_FILES:
        raise web.HTTPNotFound()
    return page_file(VENDOR_DIR / name, VENDOR_CONTENT_TYPES[PurePath(name).suffix])


# What index.html loads by itself; the scripts import the vendor files.
PAGE_LINK = re.compile(r'(?:href|src)="/(static|vendor)/([^"]+)"')


def missing_page_files() -> list[Path]:
    """The files the page needs that are not there: a broken install would otherwise serve
    a page that says "Connecting…" forever."""
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        return [index]
    linked = [
        (STATIC_DIR if folder == "static" else VENDOR_DIR) / name
        for folder, name in PAGE_LINK.findall(index.read_text(encoding="utf-8"))
    ]
    needed = dict.fromkeys([*linked, *(VENDOR_DIR / name for name in VENDOR_FILES)])
    return [path for path in needed if not path.is_file()]


def page_problem() -> str | None:
    """Why this install cannot serve the page, in one line naming the files, or None."""
    missing = missing_page_files()
    if not missing:
        return None
    return (
        f"refusing to start: the page's files are missing: {', '.join(map(str, missing))} "
        "(reinstall chatrelay)"
    )


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def setup_public_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static_file)
    app.router.add_get("/vendor/{name}", vendor_file)


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
