"""Turn per-round metrics into the README's tables: medians with min-max, and ratios taken
within each round (target / bare relay, or target - direct for latencies) before the median."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.clients import REDIS_TARGETS, Target, transport
from bench.scenarios import Metrics, Scenario

Rounds = dict[Target, list[Metrics]]  # per target, one Metrics per round, in round order


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)

    def text(self, digits: int = 1, unit: str = "") -> str:
        if not self.values:
            return "n/a"
        mid = statistics.median(self.values)
        low, high = min(self.values), max(self.values)
        if len(self.values) == 1 or low == high:
            return f"{mid:,.{digits}f}{unit}"
        return f"{mid:,.{digits}f}{unit} ({low:,.{digits}f}-{high:,.{digits}f})"

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def baseline(scenario: Scenario, target: Target) -> Target:
    if transport(target) in ("ws", "bare-ws") and "bare-ws" in scenario.targets:
        return "bare-ws"
    return "bare"


def per_round(
    rounds: Rounds,
    target: Target,
    key: str,
    other: Target | None = None,
    combine: Callable[[float, float], float] | None = None,
) -> Cell:
    """The metric for each round; with `other`, combined with that target's value of the round."""
    cell = Cell()
    mine = rounds.get(target, [])
    theirs = rounds.get(other, []) if other else []
    for index, metrics in enumerate(mine):
        value = metrics.get(key)
        if value is None:
            continue
        if other is None or combine is None:
            cell.values.append(value)
            continue
        if index < len(theirs) and (base := theirs[index].get(key)) not in (None, 0):
            assert base is not None
            cell.values.append(combine(value, base))
    return cell


def ratio(rounds: Rounds, target: Target, key: str, base: Target) -> Cell:
    if target == base:
        return Cell()
    return per_round(rounds, target, key, base, lambda a, b: a / b)


def added(rounds: Rounds, target: Target, key: str) -> Cell:
    if target == "direct":
        return Cell()
    return per_round(rounds, target, key, "direct", lambda a, b: a - b)


HEADS = {
    "streams": [
        "relay CPU µs/token",
        "x bare",
        "relay CPU util",
        "tokens/s",
        "TTFT p50 +ms",
        "TTFT p99 +ms",
        "gap p50 +ms",
        "gap p99 +ms",
        "RSS KiB/stream",
        "errors",
    ],
    "idle": ["RSS KiB/socket", "x bare", "errors"],
    "abort": ["leave → upstream closed p50 ms", "max ms", "never closed", "errors"],
    "slow": ["relay RSS KiB/reader", "upstream ahead KiB/reader", "errors"],
}


def scenario_row(scenario: Scenario, rounds: Rounds, target: Target) -> list[str]:
    base = baseline(scenario, target)

    def cell(key: str, digits: int = 1) -> str:
        return per_round(rounds, target, key).text(digits)

    if scenario.kind == "idle":
        rss_ratio = ratio(rounds, target, "rss_kib_per_socket", base)
        return [cell("rss_kib_per_socket"), rss_ratio.text(2, "x"), cell("errors", 0)]
    if scenario.kind == "abort":
        return [
            cell("abort_p50_ms"),
            cell("abort_max_ms"),
            cell("never_closed", 0),
            cell("errors", 0),
        ]
    if scenario.kind == "slow":
        return [cell("rss_kib_per_reader"), cell("upstream_ahead_kib", 0), cell("errors", 0)]
    latency_keys = ("ttft_p50_ms", "ttft_p99_ms", "gap_p50_ms", "gap_p99_ms")
    if target == "direct" or "direct" not in scenario.targets:
        # Nothing to subtract: absolute values, marked as such.
        latencies = [cell(key) + " abs" for key in latency_keys]
    else:
        latencies = [added(rounds, target, key).text() for key in latency_keys]
    row = [
        cell("cpu_us_per_token"),
        ratio(rounds, target, "cpu_us_per_token", base).text(2, "x"),
        cell("relay_cpu_util", 2),
        cell("tokens_per_s", 0),
        *latencies,
        cell("rss_kib_per_stream"),
        cell("errors", 0),
    ]
    if has_redis(rounds):
        row.append(cell("redis_cpu_us_per_token"))
    return row


def has_redis(rounds: Rounds) -> bool:
    return any(target in REDIS_TARGETS for target in rounds)


def scenario_table(scenario: Scenario, rounds: Rounds) -> list[str]:
    head = ["target", *HEADS[scenario.kind]]
    if scenario.kind == "streams" and has_redis(rounds):
        head.append("redis-server CPU µs/token")
    lines = [
        f"### {scenario.name}: {scenario.title}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for target in scenario.targets:
        if target in rounds:
            row = scenario_row(scenario, rounds, target)
            lines.append(f"| {target} | " + " | ".join(row) + " |")
    return [*lines, ""]


@dataclass(frozen=True, slots=True)
class Goal:
    what: str
    scenario: str
    key: str
    limit: float
    mode: str  # "ratio" to bare, "added" over direct, or "abs"
    redis: bool = False  # for the targets on Redis (`--redis`), not the others


# Issue 6's targets, as issue 11 restated them where it did (burst, paced CPU, RSS).
GOALS = (
    Goal("CPU/token ≤ 0.8x bare, 1 long stream", "long", "cpu_us_per_token", 0.8, "ratio"),
    Goal("CPU/token ≤ 0.8x bare, 100 unpaced", "c100", "cpu_us_per_token", 0.8, "ratio"),
    Goal("burst of 500: TTFT p50 ≤ 1.2x bare", "burst", "ttft_p50_ms", 1.2, "ratio"),
    Goal("burst of 500: TTFT p99 ≤ 1.2x bare", "burst", "ttft_p99_ms", 1.2, "ratio"),
    Goal("CPU/token ≤ 0.9x bare, 500 paced", "p500", "cpu_us_per_token", 0.9, "ratio"),
    Goal("CPU/token ≤ 0.8x bare, 4 chats/socket", "ws4", "cpu_us_per_token", 0.8, "ratio"),
    Goal("added gap p99 ≤ 20 ms, 500 paced", "p500", "gap_p99_ms", 20, "added"),
    Goal("RSS ≤ 24 KiB per active stream (500 paced)", "p500", "rss_kib_per_stream", 24, "abs"),
    Goal("RSS ≤ 12 KiB per idle WebSocket", "idle", "rss_kib_per_socket", 12, "abs"),
    Goal("leave → upstream closed p50 ≤ 10 ms", "abort", "abort_p50_ms", 10, "abs"),
    Goal("leave → upstream closed max ≤ 50 ms", "abort", "abort_max_ms", 50, "abs"),
    Goal("slow reader: relay holds ≤ 256 KiB", "slow", "rss_kib_per_reader", 256, "abs"),
    Goal("slow reader: exact text (errors = 0)", "slow", "errors", 0, "abs"),
    # Issue 14: durable chats on Redis.
    Goal(
        "Redis: CPU/token ≤ 1.5x bare, 500 paced",
        "p500",
        "cpu_us_per_token",
        1.5,
        "ratio",
        redis=True,
    ),
)


def goals_table(scenarios: list[Scenario], results: dict[str, Rounds]) -> list[str]:
    by_name = {s.name: s for s in scenarios}
    lines = [
        "| target | transport | measured (median, min-max) | met |",
        "| --- | --- | --- | --- |",
    ]
    for goal in GOALS:
        scenario = by_name.get(goal.scenario)
        if scenario is None or goal.scenario not in results:
            continue
        rounds = results[goal.scenario]
        targets: tuple[Target, ...] = ("http", "sse", "ws", "v1", "v1r")
        for target in tuple(REDIS_TARGETS) if goal.redis else targets:
            if target not in scenario.targets or target not in rounds:
                continue
            if goal.mode == "ratio":
                cell, unit = ratio(rounds, target, goal.key, baseline(scenario, target)), "x"
            elif goal.mode == "added":
                cell, unit = added(rounds, target, goal.key), " ms"
            else:
                cell, unit = per_round(rounds, target, goal.key), ""
            mid = cell.median()
            met = "-" if mid is None else ("yes" if mid <= goal.limit else "**no**")
            lines.append(f"| {goal.what} | {target} | {cell.text(2, unit)} | {met} |")
    return [*lines, ""]
