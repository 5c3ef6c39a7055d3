"""python -m server: read the environment, configure logging, serve until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging.config
import os
import sys

from .app import create_app
from .config import ConfigError, Settings
from .logs import logging_config
from .runner import new_event_loop, serve_until_signalled


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_relay_reason(settings: Settings) -> str | None:
    """Why starting would spend the owner's credits for anyone who finds the port, if it would."""
    guarded = settings.access_token is not None or settings.open_access
    if settings.openrouter_api_key and not guarded and not is_loopback(settings.host):
        return (
            f"refusing to start: OPENROUTER_API_KEY is set, {settings.host} is not loopback "
            "and ACCESS_TOKEN is unset (set ACCESS_TOKEN, or OPEN_ACCESS=1 if you mean it)"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument("--host", help="address to bind (env HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (env PORT, default 8080)")
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
    reason = open_relay_reason(settings)
    if reason:
        print(f"chatrelay: {reason}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    # Not run_app: its AppRunner would drop WebSocket frames during the grace period.
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve_until_signalled(create_app(settings), settings.host, settings.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
