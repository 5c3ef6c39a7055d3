"""A real PostgreSQL (Debian's package) on a free loopback port, that a test can stop and
restart: initdb and postgres refuse to run as root, so they run as the package's
`postgres` user, in a folder of their own that is removed at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.redis_server import free_port

START_TIMEOUT_S = 30.0
SUPERUSER = "postgres"


def postgres_bin() -> Path:
    """The newest installed version's bin folder (/usr/lib/postgresql/<version>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("PostgreSQL is missing: install Debian's postgresql package")
    return found[-1].parent


def as_postgres() -> dict[str, Any]:
    """Popen's arguments that run a command as the postgres user when we are root (initdb
    and postgres refuse root); set in the child itself, so signals reach postgres."""
    if os.geteuid() != 0:
        return {}
    return {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": [], "cwd": "/"}


class PostgresServer:
    """One cluster in a temporary folder, trust authentication on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="chatrelay-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.databases = 0
        if os.geteuid() == 0:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        subprocess.run(
            [
                *(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER),
                *("--auth=trust", "--encoding=UTF8", "--no-sync"),
            ],
            check=True,
            capture_output=True,
            **as_postgres(),
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """Start on `port` (the same one after a stop) and wait until it takes connections."""
        assert self.process is None, "already running"
        log = open(self.directory / "postgres.log", "ab")  # noqa: SIM115 (the process's)
        self.process = subprocess.Popen(
            [
                *(str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)),
                *("-k", str(self.directory), "-c", "listen_addresses=127.0.0.1"),
                # A test cluster: speed over durability.
                *("-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            **as_postgres(),
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.directory / "postgres.log").read_text(errors="replace")
                raise RuntimeError(f"postgres did not start on {self.port}:\n{text}")
            time.sleep(0.05)
        return self

    def ready(self) -> bool:
        done = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
        )
        return done.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                *(str(self.bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, database),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    def create_database(self) -> str:
        """A new empty database; its URL."""
        self.databases += 1
        name = f"test_{os.getpid()}_{self.databases}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def dump(self, database: str) -> bytes:
        """pg_dump of one database, data included: what a backup holds."""
        return subprocess.run(
            [
                *(str(self.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.port)),
                *("-U", SUPERUSER, database),
            ],
            check=True,
            capture_output=True,
        ).stdout

    def stop(self) -> None:
        """Stop at once (fast shutdown: every client's connection is dropped)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.remove()
