"""Settings read once from the environment; every handler reads them from the app."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"


class ConfigError(Exception):
    """A variable of the environment is malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    openrouter_api_key: str | None = None
    openrouter_base_url: str = DEFAULT_BASE_URL
    session_secret: str | None = None
    access_token: str | None = None
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    app_url: str | None = None
    app_title: str = "chatrelay"
    upstream_timeout_s: float = 120.0
    upstream_connect_timeout_s: float = 10.0
    first_byte_s: float = 10.0
    max_chats_per_socket: int = 4
    ws_heartbeat_s: float = 20.0
    models_cache_s: float = 300.0
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    log_format: str = "text"
    open_access: bool = False
    shutdown_grace_s: float = 20.0
    behind_proxy: bool = False
    # Limits per client (see server/limits.py); 0 turns one off.
    max_sockets_per_client: int = 32
    chats_per_minute: int = 300
    upstream_max_connections: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        secret = env.get("SESSION_SECRET") or None
        if secret is not None:
            check_fernet_key(secret)
        origins = frozenset(
            o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip()
        )
        return cls(
            host=env.get("HOST") or "127.0.0.1",
            port=_int(env, "PORT", 8080),
            openrouter_api_key=env.get("OPENROUTER_API_KEY") or None,
            openrouter_base_url=(env.get("OPENROUTER_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            session_secret=secret,
            access_token=env.get("ACCESS_TOKEN") or None,
            allowed_origins=origins,
            app_url=env.get("APP_URL") or None,
            app_title=env.get("APP_TITLE") or "chatrelay",
            upstream_timeout_s=_float(env, "UPSTREAM_TIMEOUT", 120.0),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            log_format=(env.get("LOG_FORMAT") or "text").lower(),
            open_access=env.get("OPEN_ACCESS") == "1",
            shutdown_grace_s=_float(env, "SHUTDOWN_GRACE", 20.0),
            behind_proxy=env.get("BEHIND_PROXY", "").lower() in ("1", "true", "yes"),
            max_sockets_per_client=_count(env, "MAX_SOCKETS_PER_CLIENT", 32),
            chats_per_minute=_count(env, "CHATS_PER_MINUTE", 300),
            upstream_max_connections=_count(env, "UPSTREAM_MAX_CONNECTIONS", 256),
        )


def check_fernet_key(secret: str) -> None:
    """Raise ConfigError unless `secret` is 32 url-safe base64 bytes, as Fernet wants."""
    try:
        raw = base64.urlsafe_b64decode(secret.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(
            "SESSION_SECRET is not a valid Fernet key (32 url-safe base64 bytes); "
            'make one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    number = _int(env, name, default)
    if number < 0:
        raise ConfigError(f"{name} must be 0 (no limit) or more, got {number}")
    return number


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return number


settings_key = web.AppKey("settings", Settings)
