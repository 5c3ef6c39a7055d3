"""The chat page: GET / and its files (server/static/), its libraries (server/vendor/) under
the page's security headers, /healthz, and the check that an install has every file the
page loads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePath

from aiohttp import web

from server.web.http_io import json_response

# The page and the libraries it loads live inside the package: an installed wheel is the whole
# product, and running it needs no Node.js.
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
VENDOR_DIR = Path(__file__).resolve().parents[1] / "vendor"

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


# What index.html loads, and what each of the page's scripts imports (`./x.js`, `/vendor/y.js`).
PAGE_LINK = re.compile(r'(?:href|src)="(/(?:static|vendor)/[^"]+)"')
SCRIPT_IMPORT = re.compile(r'(?:\bfrom|\bimport)\s*\(?\s*"(\.\.?/[^"]+|/(?:static|vendor)/[^"]+)"')
# The walk is the same for every app of a process: done once (while nothing is missing).
_page_files: dict[tuple[Path, Path], list[Path]] = {}


def served_file(url_path: str) -> Path:
    folder, _, name = url_path.removeprefix("/").partition("/")
    return (STATIC_DIR if folder == "static" else VENDOR_DIR) / name


def page_files() -> list[Path]:
    """Every file the page loads: index.html, what it links, what each of its scripts
    imports (followed script to script; the libraries are whole files), and the libraries."""
    cached = _page_files.get((STATIC_DIR, VENDOR_DIR))
    if cached is not None:
        return cached
    index = STATIC_DIR / "index.html"
    needed, todo = {index: True}, [index]
    while todo:
        path = todo.pop()
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            found = [served_file(link) for link in PAGE_LINK.findall(text)]
        elif path.suffix == ".js" and path.is_relative_to(STATIC_DIR):
            found = [
                Path(os.path.normpath(path.parent / spec))
                if spec.startswith(".")
                else served_file(spec)
                for spec in SCRIPT_IMPORT.findall(text)
            ]
        else:
            found = []
        for file in found:
            if file not in needed:
                needed[file] = True
                todo.append(file)
    for name in VENDOR_FILES:
        needed.setdefault(VENDOR_DIR / name, True)
    files = list(needed)
    if all(file.is_file() for file in files):
        _page_files[STATIC_DIR, VENDOR_DIR] = files
    return files


def missing_page_files() -> list[Path]:
    """The files the page needs that are not there: a broken install would otherwise serve
    a page that says "Connecting…" forever."""
    return [file for file in page_files() if not file.is_file()]


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
