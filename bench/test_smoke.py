"""The benchmark's smoke run: every scenario and transport, tiny, through real sockets.

It asserts correctness only (every byte of text, every close recorded), never timings:
the machine running the suite may be busy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_module(*argv: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """`python -m argv...` from the repository root; fails the test when it exits non-zero."""
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.mark.subprocess
def test_quick_bench_relays_exact_text_on_every_path(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run_module("bench", "--quick", "--json", str(out), "--logs", str(tmp_path), timeout_s=300)
    results = json.loads(out.read_text())["results"]
    ran = {(scenario, target) for scenario, targets in results.items() for target in targets}
    for target in ("direct", "bare", "http", "sse", "ws", "v1", "v1r"):
        assert ("c100", target) in ran
    assert ("idle", "ws") in ran and ("slow", "ws") in ran and ("abort", "sse") in ran
    assert ("abort", "v1") in ran and ("slow", "v1") in ran and ("abort", "v1r") in ran
    for scenario, targets in results.items():
        for target, rounds in targets.items():
            for metrics in rounds:
                assert metrics["errors"] == 0, (scenario, target, metrics)
                if scenario == "abort":
                    assert metrics["never_closed"] == 0, (target, metrics)


@pytest.mark.subprocess
def test_quick_bench_on_redis_relays_exact_text(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    only = ["--only", "c100", "p500", "--targets", "bare", "http-redis", "ws-redis"]
    logs = ["--json", str(out), "--logs", str(tmp_path)]
    run_module("bench", "--quick", "--redis", *only, *logs, timeout_s=300)
    results = json.loads(out.read_text())["results"]
    for scenario in ("c100", "p500"):
        for target in ("http-redis", "ws-redis"):
            (metrics,) = results[scenario][target]
            assert metrics["errors"] == 0, (scenario, target, metrics)
            assert metrics["redis_cpu_us_per_token"] is not None


@pytest.mark.subprocess
@pytest.mark.parametrize("target", ["http", "ws"])
def test_burst_probe_reports_every_chat_exact(target: str) -> None:
    done = run_module("bench.burst_probe", target, "--chats", "20", "--tokens", "3", timeout_s=120)
    assert f"{target}: 20 chats x 3 tokens at once" in done.stdout
    assert "errors 0" in done.stdout and "ms per chat" in done.stdout


@pytest.mark.subprocess
def test_inprocess_bench_checks_every_chat_text() -> None:
    options = ["--chats", "5", "--tokens", "40", "--rounds", "1"]
    done = run_module("bench.inprocess", *options, timeout_s=120)
    assert "Python work per token" in done.stdout and "memory log:" in done.stdout


@pytest.mark.subprocess
def test_budget_start_bench_settles_every_chat_exactly() -> None:
    done = run_module("bench.budget_start", "--chats", "20", "--accounts", "2", timeout_s=120)
    assert "every chat reserved and settled exactly: True" in done.stdout


@pytest.mark.subprocess
def test_metered_cpu_bench_checks_every_answer_and_bills_the_metered_chats() -> None:
    options = ["--chats", "3", "--short", "10", "--long", "40", "--rounds", "2"]
    done = run_module("bench.metered_cpu", *options, timeout_s=120)
    assert "median a token: metered" in done.stdout
    assert "\n14 chats billed" in done.stdout  # 2 warm-up, then 2 rounds x 2 lengths x 3 chats


@pytest.mark.subprocess
def test_budget_burst_bench_meters_every_chat_through_the_relay() -> None:
    options = ["--n", "10", "--rounds", "1", "--engines", "sqlite"]
    done = run_module("bench.budget_burst", *options, timeout_s=120)
    for burst in ("anonymous", "unmetered", "metered"):
        assert f"sqlite round 0 {burst}: TTFT" in done.stdout
    assert "sqlite: every metered chat reserved and settled: True" in done.stdout


@pytest.mark.subprocess
def test_history_bench_times_every_query_on_both_engines() -> None:
    options = ["--size", "20", "1000", "--rounds", "1"]
    done = run_module("bench.history", *options, timeout_s=300)
    for query in ("list first page", "one conversation", "search", "sync of 1,000 changes"):
        assert query in done.stdout
    assert "sync poke to another process through Redis" in done.stdout
