"""Start chatrelay with a suggested change applied from outside, to measure it before it is made.

`python -m bench.whatif [--read-bufsize BYTES] -- [python -m server's options]`. Nothing
under server/ is edited: module constants are patched before `python -m server` runs. Add
an option here for the next idea to measure; the ones that paid off (uvloop, a lazy silence
watchdog instead of aiohttp's sock_read, a 32 KiB read buffer) are in chatrelay now.
"""

from __future__ import annotations

import argparse
import runpy
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__)
    parser.add_argument(
        "--read-bufsize", type=int, help="relay/upstream_client.py READ_BUFSIZE_BYTES"
    )
    args, rest = parser.parse_known_args()
    if args.read_bufsize:
        import server.relay.upstream_client  # noqa: PLC0415

        server.relay.upstream_client.READ_BUFSIZE_BYTES = args.read_bufsize
    sys.argv = ["server", *[a for a in rest if a != "--"]]
    runpy.run_module("server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
