"""A page file missing from an install is a start-up error naming it: whatever the page
loads (index.html's links, every module its scripts import, script to script, and the
libraries), never a page that says "Connecting…" forever."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.app import create_app
from server.config import Settings
from server.runner import StartupRefused
from server.web import page


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the package's page files, served in place of the real ones."""
    shutil.copytree(page.STATIC_DIR, tmp_path / "static")
    shutil.copytree(page.VENDOR_DIR, tmp_path / "vendor")
    monkeypatch.setattr(page, "STATIC_DIR", tmp_path / "static")
    monkeypatch.setattr(page, "VENDOR_DIR", tmp_path / "vendor")
    return tmp_path


def test_a_whole_install_has_no_problem(install: Path) -> None:
    assert page.page_problem() is None
    # Every script of the page is reached from index.html.
    scripts = set((install / "static" / "js").glob("*.js"))
    assert scripts <= set(page.page_files())


@pytest.mark.parametrize(
    "missing",
    [
        "static/index.html",
        "static/app.css",
        "static/js/main.js",
        "static/js/math.js",  # imported by markdown.js, itself imported by main.js's imports
        "vendor/katex.js",  # imported only when an answer has math
        "vendor/highlight-dark.css",
    ],
)
def test_a_missing_file_stops_start_up_naming_it(install: Path, missing: str) -> None:
    (install / missing).unlink()
    problem = page.page_problem()
    assert problem is not None and missing in problem and "\n" not in problem
    with pytest.raises(StartupRefused, match=missing.replace(".", r"\.")):
        create_app(Settings())
