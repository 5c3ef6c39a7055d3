"""How the page and its files are served: security headers, the /vendor/ whitelist, no escapes."""

from __future__ import annotations

import pytest

from tests.conftest import MakeClient

PAGE_PATHS = ["/", "/static/js/main.js", "/static/app.css", "/vendor/marked.js"]


@pytest.mark.parametrize("path", PAGE_PATHS)
async def test_page_files_carry_the_security_headers(make_client: MakeClient, path: str) -> None:
    client = await make_client()
    response = await client.get(path)
    assert response.status == 200
    csp = response.headers["Content-Security-Policy"]
    for directive in (
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "default-src 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


async def test_scripts_are_served_as_javascript(make_client: MakeClient) -> None:
    client = await make_client()
    for path in (
        "/static/js/main.js",
        "/vendor/marked.js",
        "/vendor/purify.js",
        "/vendor/highlight.js",
    ):
        response = await client.get(path)
        assert response.content_type in {"text/javascript", "application/javascript"}, path


async def test_api_responses_do_not_get_the_page_headers(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/api/profile")
    assert "Content-Security-Policy" not in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/vendor/marked.esm.js",
        "/vendor/..%2Fpackage.json",
        "/static/..%2Fserver%2Fapp.py",
        "/static/..%2Fapp.py",
        "/static/%2E%2E/pyproject.toml",
        "/static/nothing.js",
    ],
)
async def test_only_whitelisted_files_are_served(make_client: MakeClient, path: str) -> None:
    client = await make_client()
    response = await client.get(path)
    assert response.status == 404
