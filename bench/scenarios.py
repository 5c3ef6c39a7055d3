"""The scenarios of issue 6 and how one of them is run against one target, measured from outside.

A run returns a flat dict of metrics; the driver repeats it over rounds and targets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
import orjson

from bench import clients, procs
from bench.clients import REDIS_TARGETS, Endpoints, StreamResult, Target, transport
from bench.tokens import StreamSpec

Metrics = dict[str, float | None]
# v1r: POST /v1/responses streamed, OpenAI's typed events translated from upstream's chunks.
ALL_TARGETS: tuple[Target, ...] = ("direct", "bare", "http", "sse", "ws", "v1", "v1r")
WS_TARGETS: tuple[Target, ...] = ("bare-ws", "ws")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    kind: Literal["streams", "idle", "abort", "slow"]
    streams: int
    tokens: int = 0
    gap_ms: tuple[float, float] = (0.0, 0.0)
    ramp_s: float = 0.0
    chats_per_socket: int = 1
    targets: tuple[Target, ...] = ALL_TARGETS
    rss_per_stream: bool = False
    token_size: int = 1
    slow_for_s: float = 0.0


def full_scenarios() -> list[Scenario]:
    return [
        Scenario("long", "one long stream, 100,000 tokens unpaced", "streams", 1, 100_000),
        Scenario("c100", "100 concurrent unpaced streams x 1,000 tokens", "streams", 100, 1_000),
        Scenario(
            "p500",
            "500 streams paced at 20-50 ms x 150 tokens",
            "streams",
            500,
            150,
            (20, 50),
            ramp_s=2.0,
            rss_per_stream=True,
        ),
        Scenario(
            "p2000",
            "2,000 streams paced at 20-50 ms x 100 tokens",
            "streams",
            2_000,
            100,
            (20, 50),
            ramp_s=3.0,
            rss_per_stream=True,
        ),
        Scenario(
            "burst",
            "500 chats started at once, tokens every 20 ms x 50",
            "streams",
            500,
            50,
            (20, 20),
        ),
        Scenario(
            "ws4",
            "25 sockets x 4 chats, unpaced x 1,000 tokens",
            "streams",
            100,
            1_000,
            chats_per_socket=4,
            targets=WS_TARGETS,
        ),
        Scenario("idle", "5,000 idle WebSockets", "idle", 5_000, targets=WS_TARGETS),
        Scenario(
            "abort",
            "60 clients leave: 40 mid-stream, 20 while upstream is silent",
            "abort",
            60,
            3_000,
            (20, 20),
        ),
        Scenario(
            "slow",
            "4 readers at 1/10 of upstream's pace, 2 MB/s x 4 s each",
            "slow",
            4,
            4_000,
            (1, 1),
            token_size=400,
            slow_for_s=5.0,
            targets=("bare", "http", "sse", "v1", "bare-ws", "ws"),
        ),
    ]


def with_redis(scenario: Scenario) -> Scenario:
    """The scenario with chatrelay on Redis too, next to each of its HTTP and WebSocket runs."""
    targets: list[Target] = []
    for target in scenario.targets:
        targets.append(target)
        targets += [redis for redis, plain in REDIS_TARGETS.items() if plain == target]
    return dataclasses.replace(scenario, targets=tuple(targets))


def quick_scenarios() -> list[Scenario]:
    """Every path, tiny: for the smoke test, which checks correctness and never timings."""
    return [
        Scenario("long", "one stream, 300 tokens", "streams", 1, 300),
        Scenario("c100", "10 concurrent streams x 50 tokens", "streams", 10, 50),
        Scenario(
            "p500",
            "20 paced streams x 10 tokens",
            "streams",
            20,
            10,
            (5, 10),
            ramp_s=0.1,
            rss_per_stream=True,
        ),
        Scenario("burst", "50 chats at once x 10 tokens", "streams", 50, 10, (5, 5)),
        Scenario(
            "ws4",
            "3 sockets x 4 chats x 50 tokens",
            "streams",
            12,
            50,
            chats_per_socket=4,
            targets=WS_TARGETS,
        ),
        Scenario("idle", "50 idle WebSockets", "idle", 50, targets=WS_TARGETS),
        Scenario("abort", "6 clients leave", "abort", 6, 500, (10, 10)),
        Scenario(
            "slow",
            "2 slow readers",
            "slow",
            2,
            300,
            (1, 1),
            token_size=20,
            slow_for_s=0.5,
            targets=("bare", "http", "sse", "v1", "bare-ws", "ws"),
        ),
    ]


@dataclass
class Run:
    """One scenario against one target: where to connect and which process to account."""

    scenario: Scenario
    target: Target
    ends: Endpoints
    relay_pid: int | None
    tag: str
    rng: random.Random
    redis_pid: int | None = None  # the redis-server of a Redis target

    def specs(self, count: int, **overrides: float) -> list[StreamSpec]:
        sc = self.scenario
        low, high = sc.gap_ms
        return [
            StreamSpec(
                sid=f"{self.tag}-{i}",
                n=int(overrides.get("n", sc.tokens)),
                gap_ms=round(self.rng.uniform(low, high), 1),
                ttft_ms=overrides.get("ttft_ms", 0.0),
                size=sc.token_size,
                track=sc.kind == "slow",
            )
            for i in range(count)
        ]

    def ws_url(self) -> str:
        if self.target == "bare-ws":
            return f"{self.ends.bare}/ws"
        return f"{self.ends.chatrelay}/api/chat/ws"

    def cpu(self) -> float:
        return 0.0 if self.relay_pid is None else procs.cpu_seconds(self.relay_pid)

    def redis_cpu(self) -> float:
        return 0.0 if self.redis_pid is None else procs.cpu_seconds(self.redis_pid)

    def rss(self) -> int:
        return 0 if self.relay_pid is None else procs.rss_bytes(self.relay_pid)


def stream_groups(
    run: Run, session: aiohttp.ClientSession, specs: list[StreamSpec], **kw: float
) -> list[Callable[[], Awaitable[list[StreamResult]]]]:
    """One callable per connection: an HTTP stream, or a socket with its chats."""
    per = run.scenario.chats_per_socket if transport(run.target) in WS_TARGETS else 1
    groups = [specs[i : i + per] for i in range(0, len(specs), per)]
    leave_arrivals = int(kw.pop("leave_after_arrivals", 0)) or None
    leave_s = kw.pop("leave_after_s", None)

    def one(group: list[StreamSpec]) -> Callable[[], Awaitable[list[StreamResult]]]:
        async def go() -> list[StreamResult]:
            if transport(run.target) in WS_TARGETS:
                return await clients.ws_socket(
                    session,
                    run.ws_url(),
                    group,
                    leave_after_arrivals=leave_arrivals,
                    leave_after_s=leave_s,
                    **kw,
                )
            return [
                await clients.http_stream(
                    session,
                    run.target,
                    run.ends,
                    group[0],
                    leave_after_arrivals=leave_arrivals,
                    leave_after_s=leave_s,
                    **kw,
                )
            ]

        return go

    return [one(group) for group in groups]


async def launch(
    groups: list[Callable[[], Awaitable[list[StreamResult]]]], ramp_s: float
) -> list[StreamResult]:
    async def staggered(
        index: int, go: Callable[[], Awaitable[list[StreamResult]]]
    ) -> list[StreamResult]:
        await asyncio.sleep(ramp_s * index / max(len(groups), 1))
        return await go()

    nested = await asyncio.gather(*(staggered(i, go) for i, go in enumerate(groups)))
    return [result for results in nested for result in results]


class RssPeak:
    """Samples the relay's RSS while a scenario runs; keeps the highest."""

    def __init__(self, run: Run, every_s: float = 0.1) -> None:
        self.run, self.every_s, self.peak = run, every_s, run.rss()
        self.task = asyncio.create_task(self.sample())

    async def sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.run.rss())
            await asyncio.sleep(self.every_s)

    def stop(self) -> int:
        self.task.cancel()
        return max(self.peak, self.run.rss())


def errors_of(results: list[StreamResult]) -> tuple[int, str | None]:
    bad = [r.error for r in results if r.error]
    return len(bad), (bad[0] if bad else None)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_streams(run: Run) -> tuple[Metrics, str | None]:
    sc = run.scenario
    specs = run.specs(sc.streams)
    async with clients.new_session() as session:
        groups = stream_groups(run, session, specs)
        rss0, cpu0, t0, redis0 = run.rss(), run.cpu(), time.monotonic(), run.redis_cpu()
        peak = RssPeak(run)
        results = await launch(groups, sc.ramp_s)
        elapsed, cpu = time.monotonic() - t0, run.cpu() - cpu0
        redis_cpu = run.redis_cpu() - redis0
        rss_peak = peak.stop()
    tokens = sum(spec.n for spec in specs)
    ttfts = [r.arrivals[0] - r.started for r in results if r.arrivals]
    gaps = [b - a for r in results for a, b in zip(r.arrivals, r.arrivals[1:], strict=False)]
    count, sample = errors_of(results)
    relayed = run.relay_pid is not None
    return {
        "cpu_us_per_token": cpu / tokens * 1e6 if relayed else None,
        "relay_cpu_util": cpu / elapsed if relayed else None,
        "tokens_per_s": tokens / elapsed,
        "ttft_p50_ms": _ms(pct(ttfts, 0.5)),
        "ttft_p99_ms": _ms(pct(ttfts, 0.99)),
        "gap_p50_ms": _ms(pct(gaps, 0.5)),
        "gap_p99_ms": _ms(pct(gaps, 0.99)),
        "rss_kib_per_stream": (rss_peak - rss0) / 1024 / sc.streams
        if relayed and sc.rss_per_stream
        else None,
        "redis_cpu_us_per_token": redis_cpu / tokens * 1e6 if run.redis_pid else None,
        "errors": count,
    }, sample


async def run_idle(run: Run) -> tuple[Metrics, str | None]:
    sc = run.scenario
    hold = asyncio.Event()
    # At most 200 handshakes in flight: a SYN flood would measure the kernel's backlog.
    connecting = asyncio.Semaphore(200)
    opened = 0
    all_open = asyncio.Event()

    def on_open() -> None:
        nonlocal opened
        opened += 1
        connecting.release()
        if opened == sc.streams:
            all_open.set()

    async def one(session: aiohttp.ClientSession) -> str | None:
        await connecting.acquire()
        return await clients.idle_socket(session, run.ws_url(), hold, on_open)

    async with clients.new_session() as session:
        rss0 = run.rss()
        tasks = [asyncio.create_task(one(session)) for _ in range(sc.streams)]
        async with asyncio.timeout(120):
            await all_open.wait()
        await asyncio.sleep(1.0)  # let the last handshakes settle before reading RSS
        rss = max(run.rss() for _ in range(3))
        hold.set()
        outcomes = await asyncio.gather(*tasks)
    bad = [o for o in outcomes if o]
    return {
        "rss_kib_per_socket": (rss - rss0) / 1024 / sc.streams,
        "errors": len(bad),
    }, (bad[0] if bad else None)


async def fetch_json(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        data: dict[str, float] = orjson.loads(await response.read())
        return data


async def run_abort(run: Run) -> tuple[Metrics, str | None]:
    sc = run.scenario
    await fetch_json(f"{run.ends.fake}/_bench/closed")  # forget earlier scenarios' closes
    silent = sc.streams // 3
    midstream = run.specs(sc.streams - silent)
    thinking = [
        StreamSpec(f"{spec.sid}s", spec.n, spec.gap_ms, ttft_ms=8_000.0)
        for spec in run.specs(silent)
    ]
    async with clients.new_session() as session:
        results = await launch(
            stream_groups(run, session, midstream, leave_after_arrivals=5)
            + stream_groups(run, session, thinking, leave_after_s=0.5),
            ramp_s=0.5,
        )
        await asyncio.sleep(1.0)  # anything not closed by now is reported as never closed
    closed = await fetch_json(f"{run.ends.fake}/_bench/closed")
    latencies = [
        closed[r.spec.sid] - r.left_at
        for r in results
        if r.left_at is not None and r.spec.sid in closed
    ]
    left = sum(r.left_at is not None for r in results)
    count, sample = errors_of(results)
    return {
        "abort_p50_ms": _ms(pct(latencies, 0.5)),
        "abort_max_ms": _ms(max(latencies, default=None)),
        "never_closed": left - len(latencies),
        "errors": count + (len(results) - left),
    }, sample


async def run_slow(run: Run) -> tuple[Metrics, str | None]:
    sc = run.scenario
    specs = run.specs(sc.streams)
    spec = specs[0]
    upstream_rate = spec.text_bytes_per_token() / (spec.gap_ms / 1000)
    await fetch_json(f"{run.ends.fake}/_bench/sent")
    async with clients.new_session(slow=True) as session:
        rss0 = run.rss()
        peak = RssPeak(run)
        reading = asyncio.ensure_future(
            launch(
                stream_groups(
                    run, session, specs, read_rate=upstream_rate / 10, slow_for_s=sc.slow_for_s
                ),
                ramp_s=0.0,
            )
        )
        await asyncio.sleep(sc.slow_for_s - 0.2)
        sent = await fetch_json(f"{run.ends.fake}/_bench/sent")
        rss_slow = peak.stop()
        results = await reading
    read_bytes = upstream_rate / 10 * sc.slow_for_s
    ahead = [n * spec.text_bytes_per_token() - read_bytes for n in sent.values()]
    count, sample = errors_of(results)
    return {
        "rss_kib_per_reader": (rss_slow - rss0) / 1024 / sc.streams,
        "upstream_ahead_kib": statistics.median(ahead) / 1024 if ahead else None,
        "errors": count,
    }, sample


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


RUNNERS = {"streams": run_streams, "idle": run_idle, "abort": run_abort, "slow": run_slow}
