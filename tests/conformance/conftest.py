"""The conformance probes' apps: chatrelay on the test's SQLite DATA_DIR (or a database of
the test's choosing), and browsers of their own that are closed at the end."""

from __future__ import annotations

from tests.accounts.conftest import make_app, make_browser

__all__ = ["make_app", "make_browser"]
