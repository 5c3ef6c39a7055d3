"""Durable chats measured from outside: memory per detached run, replay time of a long run.

    .venv/bin/python -m bench.durable [--redis] [--detached 200] [--replay-tokens 20000]

A fresh chatrelay (and, with --redis, a redis-server of its own) per measurement. Detached:
N WebSocket chats of slow answers, each socket closed after its first text, so every run
goes on with nobody listening; RSS growth / N while they run. Replay: one answer of N tokens
runs to its end, then a new socket resumes it from seq 0 and the time to its final frame
is taken, the text checked against upstream's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import procs
from bench.clients import chat_body, new_session
from bench.loops import run_fast
from bench.run import Lab
from bench.tokens import StreamSpec


async def until_final(
    ws: aiohttp.ClientWebSocketResponse, chat_id: str
) -> tuple[str, dict[str, Any]]:
    text: list[str] = []
    while True:
        frame = orjson.loads((await ws.receive()).data)
        if frame.get("id") != chat_id:
            continue
        if frame["type"] in ("delta",):
            text.append(frame["content"])
        elif frame["type"] in ("done", "error"):
            return "".join(text), frame


async def detached_kib(lab: Lab, count: int) -> float:
    relay = lab.start_relay("ws")
    assert relay is not None
    url = f"http://127.0.0.1:{relay.port}/api/chat/ws"
    try:
        async with new_session() as session:
            before = procs.rss_bytes(relay.pid)
            for n in range(count):
                spec = StreamSpec(f"detached{n}", 600, gap_ms=50)
                async with session.ws_connect(url) as ws:
                    await ws.send_str(orjson.dumps(chat_body(spec, "d")).decode())
                    await ws.receive()  # its first text; then the socket goes
            await asyncio.sleep(2.0)
            after = procs.rss_bytes(relay.pid)
        return (after - before) / count / 1024
    finally:
        relay.stop()


async def replay_ms(lab: Lab, tokens: int) -> float:
    relay = lab.start_relay("ws")
    assert relay is not None
    url = f"http://127.0.0.1:{relay.port}/api/chat/ws"
    spec = StreamSpec("replay", tokens)
    try:
        # One browser: the session cookie (of an IP address host) makes both sockets its own.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.ws_connect(url, max_msg_size=0) as ws:
                await ws.send_str(orjson.dumps(chat_body(spec, "r")).decode())
                live, _ = await until_final(ws, "r")
            assert live == spec.text(), "live text differs"
            async with session.ws_connect(url, max_msg_size=0) as ws:
                started = time.perf_counter()
                await ws.send_str('{"type": "resume", "id": "r", "after": 0}')
                replayed, final = await until_final(ws, "r")
                took = time.perf_counter() - started
            assert replayed == spec.text() and final["type"] == "done", (
                f"replayed text differs: {len(replayed)} of {len(spec.text())}, {final}"
            )
        return took * 1000
    finally:
        relay.stop()


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="chatrelay-durable-") as tmp:
        directory = Path(tmp)
        redis = None
        extra = ["LOG_LEVEL=WARNING"]
        if args.redis:
            redis, redis_url = procs.start_redis(directory, procs.core_sets()[1])
            extra.append(f"REDIS_URL={redis_url}")
        lab = Lab(directory, [], [], extra)
        try:
            store = "redis" if args.redis else "memory"
            kib = await detached_kib(lab, args.detached)
            print(f"{store}: RSS per detached run: {kib:.1f} KiB ({args.detached} runs)")
            ms = await replay_ms(lab, args.replay_tokens)
            print(f"{store}: replay of a {args.replay_tokens}-token run: {ms:.0f} ms")
        finally:
            lab.stop()
            if redis is not None:
                redis.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", action="store_true", help="chats in a redis-server")
    parser.add_argument("--detached", type=int, default=200)
    parser.add_argument("--replay-tokens", type=int, default=20_000)
    return run_fast(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
