"""The processes under test: start them pinned to a core, wait until they listen, and read
their CPU time and RSS from /proc, summed over the whole process tree (workers included)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def core_sets() -> tuple[set[int], set[int]]:
    """(relay cores, load cores): one core each when there are two, else shared."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return set(cores), set(cores)
    return {cores[0]}, {cores[1]}


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


def start(
    name: str,
    argv: Sequence[str],
    port: int,
    cores: set[int],
    env: dict[str, str],
    log_dir: Path,
    cwd: Path,
) -> Proc:
    log = (log_dir / f"{name}.log").open("ab")
    popen = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # Threads and workers started later inherit this; the sweep below catches earlier ones.
    os.sched_setaffinity(popen.pid, cores)
    proc = Proc(name, popen, port, log)
    wait_listening(proc)
    pin_tree(popen.pid, cores)
    return proc


def pin_tree(root: int, cores: set[int]) -> None:
    for pid in tree_pids(root):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cores)


def wait_listening(proc: Proc, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see its log")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", proc.port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on port {proc.port} within {timeout_s} s")


def tree_pids(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    pids, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        pids += frontier
    return pids


def cpu_seconds(root: int) -> float:
    """User + system time of the tree, reaped children included (utime stime cutime cstime)."""
    total = 0
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
    return total / CLOCK_TICKS


def rss_bytes(root: int) -> int:
    total = 0
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    return total


def start_redis(log_dir: Path, cores: set[int]) -> tuple[Proc, str]:
    """A redis-server of the bench's own, without persistence, and its URL."""
    port = free_port()
    no_persistence = ["--save", "", "--appendonly", "no", "--dir", str(log_dir)]
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", *no_persistence]
    return start("redis", argv, port, cores, dict(os.environ), log_dir, log_dir), (
        f"redis://127.0.0.1:{port}/0"
    )
