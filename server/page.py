"""The chat page: `/`, its files under `/static/` and the npm libraries it loads from `/vendor/`."""

from __future__ import annotations

from pathlib import Path, PurePath

from aiohttp import web

ROOT_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT_DIR / "static"
NODE_MODULES_DIR = ROOT_DIR / "node_modules"

# Only these files of node_modules are served: the rest of it is nobody's business.
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
# no inline or foreign script run, and the page can only talk to its own origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
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
    relative = VENDOR_FILES.get(name)
    path = NODE_MODULES_DIR / relative if relative else None
    # Missing when `npm ci` has not run: the page then shows answers as plain text.
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    return page_file(path, VENDOR_CONTENT_TYPES[PurePath(name).suffix])


def setup_page(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static_file)
    app.router.add_get("/vendor/{name}", vendor_file)
