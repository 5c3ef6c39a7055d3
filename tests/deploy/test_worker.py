"""gunicorn start-up checks: no open relay on 0.0.0.0; several workers may start without
SESSION_SECRET (they share the one made in DATA_DIR)."""

from __future__ import annotations

import pytest

from server.config import bind_host, startup_problem
from tests.conftest import SESSION_SECRET


def test_several_workers_start_with_or_without_a_session_secret() -> None:
    assert startup_problem({}, "0.0.0.0", 2) is None
    assert startup_problem({"SESSION_SECRET": SESSION_SECRET}, "0.0.0.0", 2) is None
    assert startup_problem({}, "0.0.0.0", 1) is None


def test_a_bad_variable_is_named() -> None:
    problem = startup_problem({"SHUTDOWN_GRACE": "soon"}, "0.0.0.0", 1)
    assert problem is not None and "SHUTDOWN_GRACE" in problem


@pytest.mark.parametrize(
    ("env", "host", "refused"),
    [
        ({"OPENROUTER_API_KEY": "k"}, "0.0.0.0", True),
        ({"OPENROUTER_API_KEY": "k"}, "127.0.0.1", False),
        ({"OPENROUTER_API_KEY": "k", "ACCESS_TOKEN": "t"}, "0.0.0.0", False),
        ({"OPENROUTER_API_KEY": "k", "OPEN_ACCESS": "1"}, "0.0.0.0", False),
        ({"OPENROUTER_API_KEY": "k", "ACCOUNTS": "required"}, "0.0.0.0", False),
        ({"OPENROUTER_API_KEY": "k", "ACCOUNTS": "optional"}, "0.0.0.0", True),
    ],
)
def test_the_open_relay_check_uses_the_bound_address(
    env: dict[str, str], host: str, refused: bool
) -> None:
    assert (startup_problem(env, host, 1) is not None) is refused


def test_bind_host_picks_a_public_address_when_there_is_one() -> None:
    assert bind_host(["0.0.0.0:5000"]) == "0.0.0.0"
    assert bind_host(["127.0.0.1:8000", "[::]:8000"]) == "::"
    assert bind_host(["127.0.0.1:8000"]) == "127.0.0.1"
    assert bind_host(["unix:/tmp/app.sock"]) == "localhost"
