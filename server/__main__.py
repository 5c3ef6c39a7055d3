"""python -m server (or `chatrelay`): read the environment, set up logging, serve until SIGTERM.

python -m server migrate: create or upgrade the database's schema, then exit (a
platform's release phase).
"""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import os
import sys

from server.app import create_app
from server.config import ConfigError, Settings
from server.errors import AccountStoreUnavailable
from server.runner import (
    collect_less_often,
    new_event_loop,
    raise_open_files_limit,
    serve_until_signalled,
)
from server.telemetry import logging_config, quiet_known_warnings
from server.users.db import Database
from server.web.page import page_problem


def main(argv: list[str] | None = None) -> int:
    # The console command `chatrelay` (pyproject's project.scripts) runs this too.
    prog = "chatrelay" if os.path.basename(sys.argv[0]) == "chatrelay" else "python -m server"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--host", help="address to bind (env HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (env PORT, default 8080)")
    parser.add_argument(
        "command", nargs="?", choices=["migrate"], help="migrate: upgrade the database and exit"
    )
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.host:
        env["HOST"] = args.host
    if args.port is not None:
        env["PORT"] = str(args.port)
    try:
        settings = Settings.from_env(env)
    except ConfigError as error:
        print(f"chatrelay: {error}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
        return asyncio.run(migrate(settings))
    reason = settings.startup_problem() or page_problem()
    if reason:
        print(f"chatrelay: {reason}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    quiet_known_warnings()
    raise_open_files_limit()
    collect_less_often()
    # Not run_app: its AppRunner would drop WebSocket frames during the grace period.
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            app = create_app(settings)
        except ConfigError as error:  # a DATA_DIR that cannot be made, its secret unreadable
            print(f"chatrelay: {error}", file=sys.stderr)
            return 2
        runner.run(serve_until_signalled(app, settings.host, settings.port))
    return 0


async def migrate(settings: Settings) -> int:
    db = Database(settings)
    try:
        await db.migrate()
    except AccountStoreUnavailable:
        print("chatrelay: the database (DATABASE_URL) cannot be reached", file=sys.stderr)
        return 1
    finally:
        await db.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
