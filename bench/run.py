"""The driver: one invocation runs every scenario against every target, interleaved over rounds.

Each (round, scenario, target) gets a freshly started relay pinned to its own core, warmed
up, then measured from outside; the fake upstream and this client share the other core.
`python -m bench` (full, ~15 min on 2 cores) or `python -m bench --quick` (seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench import clients, procs, report
from bench.clients import REDIS_TARGETS, Endpoints, Target, transport
from bench.loops import run_fast
from bench.scenarios import (
    RUNNERS,
    Metrics,
    Run,
    Scenario,
    full_scenarios,
    quick_scenarios,
    with_redis,
)
from bench.tokens import StreamSpec

ROOT = Path(__file__).resolve().parent.parent
# A fixed Fernet key: chatrelay warns without one, and the warning is not what we measure.
SESSION_SECRET = "YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtMDA="
RUN_TIMEOUT_S = 180.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every path, tiny, one round")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default all)")
    parser.add_argument("--targets", nargs="*", help="targets to run (default each scenario's)")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="also chatrelay with REDIS_URL (targets http-redis, ws-redis), on a redis-server "
        "the bench starts on the load core",
    )
    parser.add_argument("--json", type=Path, help="also write the raw per-round metrics here")
    parser.add_argument("--logs", type=Path, help="directory for the processes' logs")
    parser.add_argument(
        "--wrap-chatrelay",
        default="",
        help="command prefix for chatrelay, e.g. 'py-spy record -o prof.svg --' (numbers then "
        "include the wrapper; for profiling only)",
    )
    parser.add_argument(
        "--whatif",
        default="",
        help="options for bench.whatif, e.g. '--read-bufsize 131072': measure a "
        "suggested change to chatrelay without editing it",
    )
    parser.add_argument(
        "--chatrelay-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for chatrelay, e.g. LOG_LEVEL=WARNING",
    )
    return parser.parse_args(argv)


class Lab:
    """The fake upstream (started once) and a fresh relay per run."""

    def __init__(
        self,
        log_dir: Path,
        wrap: list[str],
        whatif: list[str],
        extra_env: list[str],
        *,
        with_redis: bool = False,
    ) -> None:
        self.relay_cores, self.load_cores = procs.core_sets()
        os.sched_setaffinity(0, self.load_cores)
        self.log_dir, self.wrap, self.whatif = log_dir, wrap, whatif
        self.extra_env = dict(item.split("=", 1) for item in extra_env)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
        self.env["PYTHONPATH"] = str(ROOT)
        fake_port = procs.free_port()
        self.fake = procs.start(
            "fake",
            [sys.executable, "-m", "bench.fake_upstream", "--port", str(fake_port)],
            fake_port,
            self.load_cores,
            self.env,
            log_dir,
            ROOT,
        )
        self.fake_url = f"http://127.0.0.1:{fake_port}"
        self.redis: procs.Proc | None = None
        self.redis_url = ""
        if with_redis:
            self.redis, self.redis_url = procs.start_redis(log_dir, self.load_cores)

    def start_relay(self, target: Target) -> procs.Proc | None:
        if target == "direct":
            return None
        port = procs.free_port()
        if target in ("bare", "bare-ws"):
            upstream = ["--upstream", f"{self.fake_url}/api/v1"]
            argv = [sys.executable, "-m", "bench.bare_relay", "--port", str(port), *upstream]
            return procs.start("bare", argv, port, self.relay_cores, self.env, self.log_dir, ROOT)
        env = dict(self.env)
        env.update(
            OPENROUTER_BASE_URL=f"{self.fake_url}/api/v1",
            OPENROUTER_API_KEY="sk-or-bench",
            SESSION_SECRET=SESSION_SECRET,
            # All load comes from one loopback address: per-client limits would refuse it,
            # and the upstream pool cap would queue streams past 256. 0 turns each off.
            MAX_SOCKETS_PER_CLIENT="0",
            CHATS_PER_MINUTE="0",
            MAX_CHATS_PER_CLIENT="0",
            UPSTREAM_MAX_CONNECTIONS="0",
        )
        env.pop("ACCESS_TOKEN", None)
        if target in REDIS_TARGETS:
            with redis.Redis.from_url(self.redis_url) as client:
                client.flushall()  # each run starts on an empty Redis, as on a fresh relay
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        server = ["bench.whatif", *self.whatif, "--"] if self.whatif else ["server"]
        argv = [*self.wrap, sys.executable, "-m", *server, "--port", str(port)]
        return procs.start("chatrelay", argv, port, self.relay_cores, env, self.log_dir, ROOT)

    def stop(self) -> None:
        self.fake.stop()
        if self.redis is not None:
            self.redis.stop()


async def warm_up(run: Run) -> None:
    """A few short chats first: imports, pools and caches are not per-token costs."""
    specs = [StreamSpec(f"{run.tag}-warm{i}", 20) for i in range(3)]
    async with clients.new_session() as session:
        if transport(run.target) in ("ws", "bare-ws"):
            results = await clients.ws_socket(session, run.ws_url(), specs)
        else:
            results = [await clients.http_stream(session, run.target, run.ends, s) for s in specs]
    bad = [r.error for r in results if r.error]
    if bad:
        raise RuntimeError(f"warm-up through {run.target} failed: {bad[0]}")


async def measure(
    lab: Lab, scenario: Scenario, target: Target, tag: str, seed: int
) -> tuple[Metrics, str | None]:
    relay = lab.start_relay(target)
    try:
        port = relay.port if relay else 0
        ends = Endpoints(
            fake=lab.fake_url,
            bare=f"http://127.0.0.1:{port}",
            chatrelay=f"http://127.0.0.1:{port}",
        )
        run = Run(scenario, target, ends, relay.pid if relay else None, tag, random.Random(seed))
        if target in REDIS_TARGETS and lab.redis is not None:
            run.redis_pid = lab.redis.pid
        if target != "direct":
            await warm_up(run)
        await asyncio.sleep(0.3)  # let the relay's start-up settle before the baseline
        async with asyncio.timeout(RUN_TIMEOUT_S):
            return await RUNNERS[scenario.kind](run)
    finally:
        if relay:
            relay.stop()


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


async def bench(args: argparse.Namespace) -> int:
    scenarios = quick_scenarios() if args.quick else full_scenarios()
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only]
    if args.redis:
        scenarios = [with_redis(s) for s in scenarios]
    rounds = args.rounds or (1 if args.quick else 3)
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="chatrelay-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    lab = Lab(
        log_dir,
        shlex.split(args.wrap_chatrelay),
        shlex.split(args.whatif),
        args.chatrelay_env,
        with_redis=args.redis,
    )
    results: dict[str, report.Rounds] = {s.name: {} for s in scenarios}
    failures: list[str] = []
    started = time.monotonic()
    try:
        for round_no in range(rounds):
            for scenario in scenarios:
                targets = [t for t in scenario.targets if not args.targets or t in args.targets]
                # Rotating the order each round spreads slow drifts of the machine over targets.
                shift = round_no % len(targets) if targets else 0
                for target in targets[shift:] + targets[:shift]:
                    tag = f"r{round_no}-{scenario.name}-{target}"
                    metrics, sample = await measure(lab, scenario, target, tag, seed=round_no)
                    results[scenario.name].setdefault(target, []).append(metrics)
                    if sample or metrics.get("errors"):
                        failures.append(f"{tag}: {metrics.get('errors')} errors, e.g. {sample}")
                    print(
                        f"[{time.monotonic() - started:6.1f}s] {tag} {_brief(metrics)}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        lab.stop()
    setup = (
        f"Machine: {machine()}; relay on cores {sorted(lab.relay_cores)}, fake and client "
        f"on {sorted(lab.load_cores)}; {rounds} round(s); {time.monotonic() - started:.0f} s; "
        f"chatrelay what-if: {args.whatif or 'none'}; "
        f"extra env: {' '.join(args.chatrelay_env) or 'none'}"
        f"{'; *-redis: REDIS_URL on a redis-server on the load core' if args.redis else ''}."
    )
    lines = [setup, "", "## Targets", ""]
    lines += report.goals_table(scenarios, results)
    lines += ["## Scenarios", ""]
    for scenario in scenarios:
        lines += report.scenario_table(scenario, results[scenario.name])
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"logs: {log_dir}", file=sys.stderr)
    return 1 if failures else 0


def _brief(metrics: Metrics) -> str:
    return " ".join(f"{k}={v:.3g}" for k, v in metrics.items() if v is not None)


def main(argv: list[str] | None = None) -> int:
    return run_fast(bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
