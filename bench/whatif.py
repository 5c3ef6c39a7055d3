"""Start chatrelay with a suggested change applied from outside, to measure it before it is made.

`python -m bench.whatif [--uvloop] [--read-bufsize BYTES] -- [python -m server's options]`.
Nothing under server/ is edited: module constants are patched and the loop policy is set
before `python -m server` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import runpy
import sys
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--read-bufsize", type=int, help="server.openrouter.READ_BUFSIZE_BYTES")
    parser.add_argument(
        "--no-sock-read",
        action="store_true",
        help="drop the upstream sock_read timeout (aiohttp re-arms its timer on every read); "
        "shows what a lazy silence watchdog would save, at the cost of the watchdog itself",
    )
    args, rest = parser.parse_known_args()
    if args.no_sock_read:
        import aiohttp  # noqa: PLC0415

        client_timeout = aiohttp.ClientTimeout

        def without_sock_read(**kwargs: Any) -> aiohttp.ClientTimeout:
            kwargs.pop("sock_read", None)
            return client_timeout(**kwargs)

        aiohttp.ClientTimeout = without_sock_read  # type: ignore[assignment,misc]
    if args.uvloop:
        import uvloop  # noqa: PLC0415

        # run_app makes its loop with asyncio.new_event_loop(), which asks the policy.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.read_bufsize:
        import server.openrouter  # noqa: PLC0415

        server.openrouter.READ_BUFSIZE_BYTES = args.read_bufsize
    sys.argv = ["server", *[a for a in rest if a != "--"]]
    runpy.run_module("server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
