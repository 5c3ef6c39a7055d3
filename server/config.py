"""Settings read once from the environment: each default, its variable and its check, once.

Every start path (python -m server, gunicorn's master and workers) reads `Settings.from_env`
and asks `startup_problem()` whether it may start; gunicorn's master asks for its binds.

It stays whole (over 300 lines): each variable's parser, default and start-up check sit
beside the one Settings field that names them, so a variable is read in one place.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# A platform's generated secret (Heroku's: 64 hex characters) is long enough to stretch; a
# shorter one could be guessed offline from any cookie, so start-up refuses it.
MIN_SECRET_CHARS = 32
HKDF_INFO = b"chatrelay session cookie"
SECRET_FILE = "secret"
DATABASE_FILE = "chatrelay.db"
# What DATABASE_URL may name; a platform's Postgres add-on hands out postgres://.
DATABASE_SCHEMES = {"sqlite": "sqlite+aiosqlite", "postgres": "postgresql+asyncpg"}
DATABASE_SCHEMES |= {"postgresql": "postgresql+asyncpg", "postgresql+asyncpg": "postgresql+asyncpg"}
# The largest budget (DEFAULT_BUDGET_USD, an admin's budget_usd): kept in nano-dollars, it
# must fit the database's 64-bit integers with the spend and reservations added to it.
MAX_BUDGET_USD = 1_000_000_000


log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A variable of the environment is malformed; the message names it."""


Parse = Callable[[str, str], Any]


def env(name: str, parse: Parse, default: Any) -> Any:
    """A settings field read from the variable `name` with `parse(name, value)`.

    An unset or empty variable leaves the default.
    """
    return field(default=default, metadata={"env": name, "parse": parse})


def _text(name: str, value: str) -> str:
    return value


def _whole(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _count(name: str, value: str) -> int:
    number = _whole(name, value)
    if number < 0:
        raise ConfigError(f"{name} must be 0 (no limit) or more, got {number}")
    return number


def _positive(name: str, value: str) -> int:
    number = _whole(name, value)
    if number < 1:
        raise ConfigError(f"{name} must be 1 or more, got {number}")
    return number


def _bytes(name: str, value: str) -> int:
    number = _whole(name, value)
    if number < 1:
        raise ConfigError(f"{name} must be a positive number of bytes, got {number}")
    return number


def _seconds(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return number


def _seconds_or_zero(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise ConfigError(f"{name} must be 0 or a positive number of seconds, got {value!r}")
    return number


def _is_one(name: str, value: str) -> bool:
    # Only 1 says the owner means it; anything but 0 is a typo, not a silent "no".
    if value.strip() not in ("0", "1"):
        raise ConfigError(f"{name} must be 1 (or 0), got {value!r}")
    return value.strip() == "1"


def _yes(name: str, value: str) -> bool:
    if value.strip().lower() not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigError(f"{name} must be 1, true or yes (or 0, false, no), got {value!r}")
    return value.strip().lower() in ("1", "true", "yes")


def _origins(name: str, value: str) -> frozenset[str]:
    return frozenset(o for o in value.split(",") if o.strip())


# A host name or address, maybe with a port (`*`: any): what ALLOWED_HOSTS lists.
HOST_ENTRY = re.compile(
    r"(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?)(:\d{1,5})?"
)


def _hosts(name: str, value: str) -> frozenset[str]:
    # A URL or a typo here would be ignored in silence, and the server answer its own
    # name with 421: refused at start instead.
    hosts = _origins(name, value)
    for host in hosts:
        if not HOST_ENTRY.fullmatch(host.strip()):
            raise ConfigError(
                f"{name} must be comma-separated host names (chat.example.com, "
                f"10.0.0.5:8080), got {host.strip()!r}"
            )
    return hosts


def _origin_list(name: str, value: str) -> frozenset[str]:
    origins = _origins(name, value)
    for origin in origins:
        try:
            parts = urlsplit(origin.strip())
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError:
            parts = urlsplit("")
        if not parts.scheme or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ConfigError(
                f"{name} must be comma-separated origins (https://app.example.com), "
                f"got {origin.strip()!r}"
            )
    return origins


def _app_url(name: str, value: str) -> str:
    # APP_URL (the base of invite and reset links, a name the server answers) and the
    # upstream base URL: a URL, or refused at start rather than failing every chat.
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {value!r}")
    return value.strip()


def _log_level(name: str, value: str) -> str:
    # logging's own names; anything else would stop start-up with dictConfig's traceback.
    if value.upper() not in logging.getLevelNamesMapping():
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
    return value


def _log_format(name: str, value: str) -> str:
    if value.lower() not in ("text", "json"):
        raise ConfigError(f"{name} must be text or json, got {value!r}")
    return value


def _redis_url(name: str, value: str) -> str:
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{name} must be a redis://, rediss:// or unix:// URL")
    return value


def _one_of(*choices: str) -> Parse:
    def parse(name: str, value: str) -> str:
        if value.lower() not in choices:
            raise ConfigError(f"{name} must be {', '.join(choices)}, got {value!r}")
        return value.lower()

    return parse


def _path(name: str, value: str) -> Path:
    return Path(value)


def _database_url(name: str, value: str) -> str:
    # The URL itself is never echoed: it carries the database's password.
    scheme = value.partition(":")[0].lower()
    if "://" not in value or scheme not in DATABASE_SCHEMES:
        raise ConfigError(f"{name} must be a sqlite:///path, postgres:// or postgresql:// URL")
    if scheme == "sqlite" and (value[:10].lower() != "sqlite:///" or len(value) == 10):
        raise ConfigError(f"{name} must name a file: sqlite:///path")
    return value


def _dollars_or_none(name: str, value: str) -> float | None:
    if value.strip().lower() == "none":
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= MAX_BUDGET_USD:
        raise ConfigError(
            f"{name} must be a number of US dollars from 0 to {MAX_BUDGET_USD}, or none,"
            f" got {value!r}"
        )
    return number


def _cert_reqs(name: str, value: str) -> str:
    if value.lower() not in ("none", "optional", "required"):
        raise ConfigError(f"{name} must be none, optional or required, got {value!r}")
    return value.lower()


def is_fernet_key(secret: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(secret.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


def fernet_key_for(secret: str) -> str:
    """A Fernet key as is; any other secret of MIN_SECRET_CHARS or more stretched into one
    with HKDF-SHA256 (the same on every process); ValueError for a shorter one."""
    if is_fernet_key(secret):
        return secret
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"must be a Fernet key or a secret of at least {MIN_SECRET_CHARS} characters "
            f"(this one has {len(secret)}); make one with: python -c "
            '"import secrets; print(secrets.token_hex(32))"'
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode())).decode()


def _session_secret(name: str, value: str) -> str:
    try:
        return fernet_key_for(value)
    except ValueError as error:
        raise ConfigError(f"{name} {error}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = env("HOST", _text, "127.0.0.1")
    port: int = env("PORT", _whole, 8080)
    openrouter_api_key: str | None = env("OPENROUTER_API_KEY", _text, None)
    openrouter_base_url: str = env("OPENROUTER_BASE_URL", _app_url, DEFAULT_BASE_URL)
    session_secret: str | None = env("SESSION_SECRET", _session_secret, None)
    access_token: str | None = env("ACCESS_TOKEN", _text, None)
    allowed_origins: frozenset[str] = env("ALLOWED_ORIGINS", _origin_list, frozenset())
    # Names a loopback-bound server answers besides loopback ones (server/web/hosts.py).
    allowed_hosts: frozenset[str] = env("ALLOWED_HOSTS", _hosts, frozenset())
    app_url: str | None = env("APP_URL", _app_url, None)
    app_title: str = env("APP_TITLE", _text, "chatrelay")
    upstream_timeout_s: float = env("UPSTREAM_TIMEOUT", _seconds, 120.0)
    log_level: str = env("LOG_LEVEL", _log_level, "INFO")
    log_format: str = env("LOG_FORMAT", _log_format, "text")
    open_access: bool = env("OPEN_ACCESS", _is_one, False)
    shutdown_grace_s: float = env("SHUTDOWN_GRACE", _seconds, 20.0)
    behind_proxy: bool = env("BEHIND_PROXY", _yes, False)
    # None: no Redis, each process keeps its chats and limits in memory (store/redis_conn.py).
    redis_url: str | None = env("REDIS_URL", _redis_url, None)
    # For a rediss:// URL without its own ssl_cert_reqs: platforms' add-ons manage REDIS_URL
    # and serve a self-signed certificate, so the URL cannot carry `?ssl_cert_reqs=none`.
    redis_ssl_cert_reqs: str = env("REDIS_SSL_CERT_REQS", _cert_reqs, "required")
    # Durable chats (server/relay/runs.py): how long one runs with nobody listening, and how long
    # one that ended can still be replayed.
    resume_window_s: float = env("RESUME_WINDOW_S", _seconds_or_zero, 300.0)
    chat_retention_s: float = env("CHAT_RETENTION_S", _seconds, 600.0)
    # Limits per client (see server/web/limits.py); 0 turns one off.
    max_sockets_per_client: int = env("MAX_SOCKETS_PER_CLIENT", _count, 32)
    max_chats_per_client: int = env("MAX_CHATS_PER_CLIENT", _count, 16)
    chats_per_minute: int = env("CHATS_PER_MINUTE", _count, 300)
    login_attempts_per_minute: int = env("LOGIN_ATTEMPTS_PER_MINUTE", _count, 30)
    # SPEC: a process holds 1,000 concurrent chats with the default.
    upstream_max_connections: int = env("UPSTREAM_MAX_CONNECTIONS", _count, 1000)
    # The largest chat body or WebSocket frame: chatbot-ui inlines images as data URLs.
    max_body_bytes: int = env("MAX_BODY_BYTES", _bytes, 16 * 1024 * 1024)
    # The longest a chat may run, whatever upstream sends (comment lines keep it alive).
    max_chat_duration_s: float = env("MAX_CHAT_DURATION_S", _seconds, 3600.0)
    # Accounts (server/users/): where they are kept, who may join, and what they may spend.
    data_dir: Path = env("DATA_DIR", _path, Path("data"))  # noqa: RUF009 (a Path is immutable)
    # None: SQLite in data_dir (database_url() says which URL is used).
    database_url: str | None = env("DATABASE_URL", _database_url, None)
    # PostgreSQL connections one process may open (server/users/db.py, README).
    database_pool_size: int = env("DATABASE_POOL_SIZE", _positive, 20)
    accounts: str = env("ACCOUNTS", _one_of("optional", "required"), "optional")
    signup: str = env("SIGNUP", _one_of("open", "invite", "closed"), "invite")
    default_budget_usd: float | None = env("DEFAULT_BUDGET_USD", _dollars_or_none, None)
    budget_period: str = env("BUDGET_PERIOD", _one_of("day", "week", "month"), "month")
    # Set by the platform on its dynos, whose file system is lost at every restart.
    dyno: str | None = env("DYNO", _text, None)
    # Not read from the environment: tests and the benchmark set them.
    upstream_connect_timeout_s: float = 10.0
    first_byte_s: float = 10.0
    max_chats_per_socket: int = 4
    ws_heartbeat_s: float = 20.0
    models_cache_s: float = 300.0
    # SPEC's Limits: a request's headers and body within 10 s; a POST client that accepts
    # nothing for 60 s is dropped.
    request_timeout_s: float = 10.0
    write_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        # Normalized here, once, so every comparison elsewhere is a plain lookup.
        normal = {
            "openrouter_base_url": self.openrouter_base_url.rstrip("/"),
            "allowed_origins": frozenset(normalize_origin(o) for o in self.allowed_origins),
            "log_level": self.log_level.upper(),
            "log_format": self.log_format.lower(),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        values = {
            spec.name: spec.metadata["parse"](spec.metadata["env"], raw)
            for spec in dataclasses.fields(cls)
            if "env" in spec.metadata and (raw := environ.get(spec.metadata["env"]))
        }
        return cls(**values)

    def database_url_for_engine(self) -> str:
        """DATABASE_URL with its driver (aiosqlite, asyncpg); SQLite in DATA_DIR when unset."""
        url = self.database_url or f"sqlite:///{self.data_dir / DATABASE_FILE}"
        scheme, _, rest = url.partition("://")
        driver = DATABASE_SCHEMES[scheme.lower()]
        if driver.endswith("asyncpg"):
            # libpq's sslmode (what platforms append) is asyncpg's ssl.
            rest = re.sub(r"([?&])sslmode=", r"\1ssl=", rest)
        return f"{driver}://{rest}"

    def startup_problem(self, workers: int = 1) -> str | None:
        """Why these settings must not serve with `workers` processes, in one line, or None.

        Several workers without SESSION_SECRET share the one generated in DATA_DIR.
        """
        guarded = self.access_token is not None or self.open_access or self.accounts == "required"
        if self.openrouter_api_key and not guarded and not is_loopback(self.host):
            # An open relay spends its owner's credits for anyone who finds the port.
            return (
                f"refusing to start: OPENROUTER_API_KEY is set, {self.host} is not loopback "
                "and neither ACCESS_TOKEN nor ACCOUNTS=required is set (set one, or "
                "OPEN_ACCESS=1 if you mean it)"
            )
        return None


def startup_problem(env: Mapping[str, str], host: str, workers: int) -> str | None:
    """Why gunicorn must not start these workers on `host`, in one line, or None."""
    try:
        settings = Settings.from_env(env)
        make_data_dir(settings)
    except ConfigError as error:
        return str(error)
    return dataclasses.replace(settings, host=host).startup_problem(workers)


def bind_host(binds: Iterable[str]) -> str:
    """The first bound address that is not loopback, else the first one (host part only)."""
    # A unix socket is reachable from this machine only, like loopback.
    hosts = [
        "localhost" if bind.startswith("unix:") else bind.rpartition(":")[0].strip("[]") or bind
        for bind in binds
    ]
    for host in hosts:
        if not is_loopback(host):
            return host
    return hosts[0] if hosts else "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_origin(origin: str) -> str:
    """`scheme://host[:port]` in lower case, default port dropped: equal origins compare equal."""
    text = origin.strip().rstrip("/").lower()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    if not parts.scheme or not parts.hostname:
        return text
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def make_data_dir(settings: Settings) -> None:
    """DATA_DIR, made at start when something is kept there (the SQLite database, the
    generated secret); a ConfigError naming it when it cannot be (a file, no permission)."""
    if settings.database_url is not None and settings.session_secret is not None:
        return
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"DATA_DIR {settings.data_dir} could not be made "
            f"({os.strerror(error.errno or 0)}): set DATA_DIR to a folder this user may write"
        ) from None


def with_session_secret(settings: Settings) -> Settings:
    """The settings with a SESSION_SECRET: the variable's, else the one kept in
    DATA_DIR/secret, made there at the first start (mode 0600; the processes of one machine
    race to create it atomically, and the losers read the winner's)."""
    if settings.session_secret is not None:
        return settings
    path = settings.data_dir / SECRET_FILE
    made = new_fernet_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: exactly one process creates it; written whole before it is linked in.
        scratch = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(made + "\n")
        try:
            os.link(scratch, path)
            created = True
        except FileExistsError:
            created = False
        finally:
            scratch.unlink()
        secret = made if created else path.read_text().strip()
    except OSError as error:
        raise ConfigError(
            f"SESSION_SECRET is unset and {path} could not be made or read "
            f"({os.strerror(error.errno or 0)}): set SESSION_SECRET or DATA_DIR"
        ) from None
    try:
        key = fernet_key_for(secret)
    except ValueError:
        raise ConfigError(f"SESSION_SECRET is unset and {path} holds no usable secret") from None
    if settings.dyno:
        log.warning(
            "SESSION_SECRET is unset on a dyno: the one in %s is lost at every restart and "
            "differs between dynos (set SESSION_SECRET)",
            path,
        )
    log.log(
        logging.WARNING if created else logging.INFO,
        "SESSION_SECRET %s %s: keep that file (or set SESSION_SECRET) and sessions and "
        "stored keys survive restarts",
        "generated into" if created else "read from",
        path.resolve(),
    )
    return dataclasses.replace(settings, session_secret=key)


def new_fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


settings_key = web.AppKey("settings", Settings)
