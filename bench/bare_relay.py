"""The baseline: what anyone would write in an afternoon, on the stdlib loop with stdlib json.

POST /relay takes chatrelay's body and streams the text as a chunked response; GET /ws
runs chatrelay's frame protocol. No validation, auth, logging or metrics: chatrelay must
beat this while doing all of those. Run: `python -m bench.bare_relay --port 9001 --upstream URL`.
"""

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

session_key = web.AppKey("session", aiohttp.ClientSession)
upstream_key = web.AppKey("upstream", str)


async def deltas(app: web.Application, body: dict[str, object]) -> AsyncIterator[str]:
    model = body["chatSettings"]["model"]  # type: ignore[index]
    payload = {"model": model, "messages": body["messages"], "stream": True}
    async with app[session_key].post(app[upstream_key], json=payload) as upstream:
        async for line in upstream.content:
            if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    yield choices[0]["delta"]["content"]


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    async for text in deltas(request.app, body):
        await response.write(text.encode())
    await response.write_eof()
    return response


async def ws_chat(ws: web.WebSocketResponse, app: web.Application, body: dict[str, str]) -> None:
    async for text in deltas(app, body):  # type: ignore[arg-type]
        await ws.send_str(json.dumps({"type": "delta", "id": body["id"], "content": text}))
    await ws.send_str(json.dumps({"type": "done", "id": body["id"], "finish_reason": "stop"}))


async def ws_route(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    chats: set[asyncio.Task[None]] = set()
    async for message in ws:
        chats.add(asyncio.create_task(ws_chat(ws, request.app, json.loads(message.data))))
    for chat in chats:
        chat.cancel()
    return ws


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app[session_key] = session
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--upstream", default="http://127.0.0.1:9000/api/v1")
    args = parser.parse_args()
    app = web.Application()
    app[upstream_key] = args.upstream + "/chat/completions"
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/relay", relay)
    app.router.add_get("/ws", ws_route)
    # Without it a client that leaves would not stop upstream until the next write fails.
    # backlog as chatrelay's (server/runner.py): the burst scenario measures relays, not
    # the kernel dropping SYNs past aiohttp's default of 128.
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        handler_cancellation=True,
        backlog=4096,
        print=None,
    )


if __name__ == "__main__":
    main()
