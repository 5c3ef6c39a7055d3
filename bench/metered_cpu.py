"""What a budget costs a chat end to end (issue 24): `python -m server`'s CPU per token for
chats of one signed-in account on the server key, metered (the model has a price, so each
chat reserves at its start and settles at its end) and unmetered (a model without a price),
in alternating rounds on one server, so the machine's load falls on both alike.

Each round starts `--chats` POST chats at once, short ones (`--short` tokens, unpaced) and then
long ones (`--long`), and reads the server's CPU time from /proc before and after each; every
answer is checked byte for byte. From the two lengths, a chat's CPU is split into what each
token costs (the slope) and what the chat costs once (its start and end, where a budget
reserves and settles). The account's spend rows (`/api/admin/spend`) show the metered chats
were billed.
Run: `python -m bench.metered_cpu [--chats 20] [--short 100] [--long 2000] [--rounds 6]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.accounts_burst import SECRET, mint_accounts, process, wait_up
from bench.fake_upstream import PRICED_MODEL
from bench.procs import cpu_seconds
from bench.tokens import StreamSpec
from server.config import Settings
from tests.redis_server import free_port

KINDS = ("metered", "unmetered")


def chat_body(kind: str, spec: StreamSpec) -> dict[str, object]:
    # The same prompt for both kinds: only the model's price differs.
    model = PRICED_MODEL if kind == "metered" else spec.model()
    return {
        "chatSettings": {"model": model},
        "messages": [{"role": "user", "content": spec.model()}],
    }


async def one_chat(session: aiohttp.ClientSession, url: str, kind: str, spec: StreamSpec) -> None:
    async with session.post(f"{url}/api/chat/openrouter", json=chat_body(kind, spec)) as answer:
        text = await answer.text()
    if answer.status != 200 or text != spec.text():
        raise RuntimeError(f"{kind} chat {spec.sid}: {answer.status} {text[:200]!r}")


async def chat_cpu(
    session: aiohttp.ClientSession, url: str, pid: int, kind: str, chats: int, tokens: int
) -> float:
    """The server's CPU µs per chat over `chats` chats of `tokens` tokens at once."""
    specs = [StreamSpec(sid=f"{kind}{time.monotonic_ns()}-{i}", n=tokens) for i in range(chats)]
    before = cpu_seconds(pid)
    await asyncio.gather(*(one_chat(session, url, kind, spec) for spec in specs))
    return (cpu_seconds(pid) - before) / chats * 1e6


def ratio(a: float, b: float) -> str:
    # A tiny run may read no CPU tick at all (they are 10 ms).
    return f"{a / b:.3f}x" if b > 0 else "n/a (too short to measure)"


def split(short: float, long: float, lengths: tuple[int, int]) -> tuple[float, float]:
    """(µs a token, µs a chat once) from the CPU per chat at two lengths."""
    per_token = (long - short) / (lengths[1] - lengths[0])
    return per_token, short - lengths[0] * per_token


async def main(chats: int, lengths: tuple[int, int], rounds: int) -> None:
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/api/v1"
    data = Path(tempfile.mkdtemp(prefix="chatrelay-bench-"))
    settings = Settings(data_dir=data, session_secret=SECRET)
    [cookie] = await mint_accounts(settings, 1, own_key=False)
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "SESSION_SECRET": SECRET,
        "OPENROUTER_BASE_URL": upstream,
        "OPENROUTER_API_KEY": "sk-or-v1-server-bench-key",
        "DEFAULT_BUDGET_USD": "1000000",
        "MAX_CHATS_PER_CLIENT": "0",
        "CHATS_PER_MINUTE": "0",
        # Each unmetered chat names a model of its own, each warned of once: not wanted here.
        "LOG_LEVEL": "ERROR",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    per_token: dict[str, list[float]] = {kind: [] for kind in KINDS}
    per_chat: dict[str, list[float]] = {kind: [] for kind in KINDS}
    fake = ["bench.fake_upstream", "--port", str(upstream_port)]
    server = ["server", "--port", str(port)]
    async with process(fake, dict(os.environ)), process(server, env) as pid:
        await wait_up(url)
        headers = {"Cookie": f"chatrelay_session={cookie}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for kind in KINDS:  # warm-up: the model list, the pool, the first imports
                await chat_cpu(session, url, pid, kind, 2, 10)
            for round_ in range(rounds):
                order = KINDS if round_ % 2 == 0 else KINDS[::-1]
                for kind in order:
                    short, long = [
                        await chat_cpu(session, url, pid, kind, chats, n) for n in lengths
                    ]
                    slope, fixed = split(short, long, lengths)
                    per_token[kind].append(slope)
                    per_chat[kind].append(fixed)
                    print(f"round {round_} {kind}: {slope:.2f} µs a token, {fixed:.0f} µs a chat")
            async with session.get(f"{url}/api/admin/spend") as answer:
                billed = sum(row["chats"] for row in (await answer.json())["data"])
    token = {kind: statistics.median(per_token[kind]) for kind in KINDS}
    once = {kind: statistics.median(per_chat[kind]) for kind in KINDS}
    print(
        f"median a token: metered {token['metered']:.2f} µs, unmetered "
        f"{token['unmetered']:.2f} µs: {ratio(token['metered'], token['unmetered'])}\n"
        f"median a chat once: metered {once['metered']:.0f} µs, unmetered "
        f"{once['unmetered']:.0f} µs: +{once['metered'] - once['unmetered']:.0f} µs\n"
        f"{billed} chats billed"
    )
    if billed < 2 * chats * rounds:
        raise RuntimeError(f"{billed} chats billed, not the {2 * chats * rounds} metered ones")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.metered_cpu", description=__doc__)
    parser.add_argument("--chats", type=int, default=20, help="chats at once (default 20)")
    parser.add_argument("--short", type=int, default=100, help="a short chat's tokens (100)")
    parser.add_argument("--long", type=int, default=2000, help="a long chat's tokens (2000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each (default 6)")
    options = parser.parse_args()
    asyncio.run(main(options.chats, (options.short, options.long), options.rounds))
