"""A burst of chats started at once against one relay: where the time goes (issue 11).

    .venv/bin/python -m bench.burst_probe TARGET [--chats 500] [--tokens 50]

TARGET is bare, http, bare-ws or ws. A fresh relay (pinned as in `python -m bench`),
warmed, then every chat started at once; it prints TTFT percentiles and a histogram, the
CPU the relay, the fake upstream and this client spent in the burst (is a core the
bottleneck?), and the kernel's TCP counters over the burst only (`nstat`: listen queue
overflows, SYN retransmissions, other retransmissions). `--tokens 1` leaves only each
chat's start and end: relay CPU / chats is then its cost per chat start.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench import clients, procs
from bench.clients import Endpoints, StreamResult, Target
from bench.loops import run_fast
from bench.run import Lab
from bench.tokens import StreamSpec

COUNTERS = (
    "ListenOverflows",
    "ListenDrops",
    "SynRetrans",
    "RetransSegs",
    "LossProbes",
    "TCPTimeouts",
    "ReqQFull",
    "SyncookiesSent",
    "PassiveOpens",
)


async def nstat(*options: str) -> str:
    """iproute2's nstat: the counters' change since its last call; '' without nstat."""
    try:
        process = await asyncio.create_subprocess_exec(
            "nstat", *options, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
    except FileNotFoundError:
        return ""
    out, _ = await process.communicate()
    return out.decode()


def ws_url(target: Target, ends: Endpoints) -> str:
    return ends.chatrelay + ("/ws" if target == "bare-ws" else "/api/chat/ws")


async def chats(target: Target, ends: Endpoints, specs: list[StreamSpec]) -> list[StreamResult]:
    async with clients.new_session() as session:
        if target in ("ws", "bare-ws"):
            sockets = [clients.ws_socket(session, ws_url(target, ends), [s]) for s in specs]
            return [r for results in await asyncio.gather(*sockets) for r in results]
        streams = [clients.http_stream(session, target, ends, spec) for spec in specs]
        return list(await asyncio.gather(*streams))


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(results: list[StreamResult], counters: str) -> list[str]:
    ttfts = sorted((r.arrivals[0] - r.started) * 1000 for r in results if r.arrivals)
    if not ttfts:
        return ["no chat got its first text"]
    errors = sum(1 for r in results if r.error)
    quantiles = " / ".join(f"{percentile(ttfts, q):.0f}" for q in (0.1, 0.5, 0.9, 0.99))
    bins: dict[int, int] = {}
    for ttft in ttfts:
        bins[int(ttft // 100) * 100] = bins.get(int(ttft // 100) * 100, 0) + 1
    histogram = ", ".join(f"{low}: {n}" for low, n in bins.items())
    lines = [
        f"TTFT p10 / p50 / p90 / p99: {quantiles} ms (max {ttfts[-1]:.0f}); errors {errors}",
        f"TTFT histogram, 100 ms bins: {histogram}",
    ]
    kept = [line for line in counters.splitlines() if any(c in line for c in COUNTERS)]
    return [*lines, "kernel counters over the burst (nstat; absent = 0):", *kept]


async def probe(target: Target, count: int, tokens: int) -> None:
    lab = Lab(Path(tempfile.mkdtemp(prefix="chatrelay-burst-")), [], [], [])
    relay = lab.start_relay(target)
    assert relay is not None
    try:
        url = f"http://127.0.0.1:{relay.port}"
        ends = Endpoints(fake=lab.fake_url, bare=url, chatrelay=url)
        await chats(target, ends, [StreamSpec(f"warm{i}", 20) for i in range(3)])
        await asyncio.sleep(0.3)
        await nstat("-n")  # from now on, nstat counts from here
        cpu = procs.cpu_seconds(relay.pid), procs.cpu_seconds(lab.fake.pid), time.process_time()
        started = time.monotonic()
        specs = [StreamSpec(f"burst{i}", tokens, gap_ms=20) for i in range(count)]
        results = await chats(target, ends, specs)
        wall = time.monotonic() - started
        counters = await nstat()
        relay_s = procs.cpu_seconds(relay.pid) - cpu[0]
        fake_s, client_s = procs.cpu_seconds(lab.fake.pid) - cpu[1], time.process_time() - cpu[2]
        print(f"{target}: {count} chats x {tokens} tokens at once, {wall:.2f} s")
        per_chat_ms = relay_s / count * 1000
        print(
            f"CPU in the burst: relay {relay_s:.2f} s ({per_chat_ms:.2f} ms per chat), fake "
            f"{fake_s:.2f} s, client {client_s:.2f} s (the fake and the client share a core)"
        )
        print("\n".join(report(results, counters)))
    finally:
        relay.stop()
        lab.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst_probe", description=__doc__)
    parser.add_argument("target", choices=["bare", "http", "bare-ws", "ws"])
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=50)
    args = parser.parse_args(argv)
    run_fast(probe(args.target, args.chats, args.tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
