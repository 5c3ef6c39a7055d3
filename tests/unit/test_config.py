"""Settings from the environment, and the start-up refusal to run as an open relay."""

from __future__ import annotations

import pytest

from server.config import ConfigError, Settings

GOOD_SECRET = "Xq0Y0s8cT3o3ZgfN0f7d4Yb1WkqJ8mZr2VvH5nD6eLs="


def test_defaults_match_spec() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.openrouter_base_url == "https://openrouter.ai/api/v1"
    assert settings.app_title == "chatrelay"
    assert settings.upstream_timeout_s == 120
    assert settings.openrouter_api_key is None and settings.access_token is None


def test_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "HOST": "0.0.0.0",
            "PORT": "5000",
            "OPENROUTER_BASE_URL": "http://127.0.0.1:11434/v1/",
            "ALLOWED_ORIGINS": "https://a.example, https://b.example/",
            "UPSTREAM_TIMEOUT": "2.5",
            "SESSION_SECRET": GOOD_SECRET,
            "APP_TITLE": "My relay",
        }
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 5000)
    assert settings.openrouter_base_url == "http://127.0.0.1:11434/v1"
    assert settings.allowed_origins == {"https://a.example", "https://b.example"}
    assert settings.upstream_timeout_s == 2.5
    assert settings.app_title == "My relay"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"UPSTREAM_TIMEOUT": "0"}, "UPSTREAM_TIMEOUT"),
        ({"SESSION_SECRET": "too-short"}, "SESSION_SECRET"),
        ({"SESSION_SECRET": GOOD_SECRET[:31]}, "SESSION_SECRET"),
    ],
)
def test_malformed_variables_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"OPENROUTER_API_KEY": "k", "HOST": "0.0.0.0"}, True),
        ({"OPENROUTER_API_KEY": "k", "HOST": "127.0.0.1"}, False),
        ({"OPENROUTER_API_KEY": "k", "HOST": "::1"}, False),
        ({"OPENROUTER_API_KEY": "k", "HOST": "0.0.0.0", "ACCESS_TOKEN": "t"}, False),
        ({"OPENROUTER_API_KEY": "k", "HOST": "0.0.0.0", "OPEN_ACCESS": "1"}, False),
        ({"HOST": "0.0.0.0"}, False),
    ],
)
def test_open_relay_is_refused(env: dict[str, str], refused: bool) -> None:
    reason = Settings.from_env(env).startup_problem()
    assert (reason is not None) == refused
    if reason:
        assert "ACCESS_TOKEN" in reason and "\n" not in reason


def test_max_body_bytes_defaults_to_16_mib_and_is_read() -> None:
    assert Settings.from_env({}).max_body_bytes == 16 * 1024 * 1024
    assert Settings.from_env({"MAX_BODY_BYTES": "33554432"}).max_body_bytes == 32 * 1024 * 1024
    for bad in ("0", "-1", "lots"):
        with pytest.raises(ConfigError, match="MAX_BODY_BYTES"):
            Settings.from_env({"MAX_BODY_BYTES": bad})


def test_the_upstream_pool_holds_a_thousand_chats_by_default() -> None:
    assert Settings.from_env({}).upstream_max_connections >= 1000


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": "mysql://root:hunter2@db/chat"}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:///"}, "DATABASE_URL"),
        ({"DATABASE_URL": "just-a-path.db"}, "DATABASE_URL"),
        ({"ACCOUNTS": "sometimes"}, "ACCOUNTS"),
        ({"SIGNUP": "maybe"}, "SIGNUP"),
        ({"DEFAULT_BUDGET_USD": "-1"}, "DEFAULT_BUDGET_USD"),
        ({"DEFAULT_BUDGET_USD": "inf"}, "DEFAULT_BUDGET_USD"),
        ({"DEFAULT_BUDGET_USD": "1e12"}, "DEFAULT_BUDGET_USD"),
        ({"DEFAULT_BUDGET_USD": "five"}, "DEFAULT_BUDGET_USD"),
        ({"BUDGET_PERIOD": "year"}, "BUDGET_PERIOD"),
    ],
)
def test_malformed_account_variables_are_named_in_one_line(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as refused:
        Settings.from_env(env)
    assert "\n" not in str(refused.value)
    assert "hunter2" not in str(refused.value)  # a database URL's password is not echoed


def test_account_variables_defaults_and_values() -> None:
    defaults = Settings.from_env({"DATA_DIR": "/srv/relay"})
    assert defaults.database_url_for_engine() == "sqlite+aiosqlite:////srv/relay/chatrelay.db"
    assert (defaults.accounts, defaults.signup) == ("optional", "invite")
    assert (defaults.default_budget_usd, defaults.budget_period) == (None, "month")
    assert (
        Settings.from_env({}).database_url_for_engine() == "sqlite+aiosqlite:///data/chatrelay.db"
    )
    read = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u:p@db.example:5432/chat?sslmode=require",
            "ACCOUNTS": "required",
            "SIGNUP": "Open",
            "DEFAULT_BUDGET_USD": "5.5",
            "BUDGET_PERIOD": "week",
        }
    )
    assert read.database_url_for_engine() == (
        "postgresql+asyncpg://u:p@db.example:5432/chat?ssl=require"
    )
    assert (read.accounts, read.signup, read.budget_period) == ("required", "open", "week")
    assert read.default_budget_usd == 5.5
    assert Settings.from_env({"DEFAULT_BUDGET_USD": "none"}).default_budget_usd is None
    assert Settings.from_env({"DEFAULT_BUDGET_USD": "0"}).default_budget_usd == 0
    url = "postgresql://u@h/d"
    assert (
        Settings.from_env({"DATABASE_URL": url})
        .database_url_for_engine()
        .startswith("postgresql+asyncpg://")
    )
