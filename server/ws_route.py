"""GET /api/chat/ws: the chat core written as JSON frames, several chats per socket."""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .chat import stream_chat
from .config import settings_key
from .drain import running_chat
from .errors import BadRequest, ChatError, ChatIdInUse, InternalError, TooManyChats
from .events import ChatEvent, Done
from .limits import admit_chat, socket_slot
from .metrics import metrics_key
from .openrouter import openrouter_key
from .profile import Profile, check_api_key, request_profile
from .request import parse_chat_request
from .web_json import decode_json
from .ws_response import ChatWebSocketResponse

log = logging.getLogger(__name__)

MAX_ID_CHARS = 64
WRITER_LIMIT_BYTES = 64 * 1024

sockets_key: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")


def done_frame(chat_id: str, done: Done) -> dict[str, Any]:
    return {"type": "done", "id": chat_id, "finish_reason": done.finish_reason, "usage": done.usage}


def error_frame(chat_id: str | None, error: ChatError) -> dict[str, Any]:
    return {"type": "error", "id": chat_id, **error.to_dict()}


class ChatSocket:
    """One browser's socket: reads frames, runs each chat as its own task, cancels on demand."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, profile: Profile) -> None:
        self.request, self.ws, self.profile = request, ws, profile
        self.limit = request.app[settings_key].max_chats_per_socket
        self.running: dict[str, asyncio.Task[None]] = {}
        # The tasks a cancel frame stopped, as opposed to those a closing socket stopped.
        self.cancelled: set[asyncio.Task[None]] = set()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_encoded(orjson.dumps(frame))

    async def send_encoded(self, frame: bytes) -> None:
        if not self.ws.closed:
            # send_json_bytes would send a binary frame; SPEC wants text frames.
            await self.ws.send_frame(frame, WSMsgType.TEXT)

    async def receive_frames(self) -> None:
        async for message in self.ws:
            if message.type is WSMsgType.TEXT:
                await self.handle_text(message.data)
            elif message.type is WSMsgType.BINARY:
                await self.send(
                    error_frame(None, BadRequest("Binary frames are not accepted; send JSON text"))
                )

    async def handle_text(self, text: str) -> None:
        try:
            frame = decode_json(text, "The frame")
        except BadRequest as error:
            await self.send(error_frame(None, error))
            return
        if not isinstance(frame, dict):
            await self.send(error_frame(None, BadRequest("The frame must be a JSON object")))
            return
        raw_id = frame.get("id")
        readable_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_ID_CHARS else None
        try:
            kind = frame.get("type", "chat")
            if raw_id is not None and readable_id is None:
                raise BadRequest(f"id must be a string of at most {MAX_ID_CHARS} characters")
            if kind == "chat":
                self.start_chat(readable_id or secrets.token_hex(8), frame)
            elif kind == "cancel":
                await self.cancel_chat(readable_id)
            else:
                raise BadRequest("type must be chat or cancel")
        except ChatError as error:
            await self.send(error_frame(readable_id, error))
        except Exception:
            # One frame that trips a bug must not end the socket and every chat on it.
            log.exception("frame failed")
            await self.send(error_frame(readable_id, InternalError()))

    def start_chat(self, chat_id: str, frame: dict[str, Any]) -> None:
        if chat_id in self.running:
            raise ChatIdInUse(f"A chat with id {chat_id} is still running on this socket")
        if len(self.running) >= self.limit:
            raise TooManyChats(f"At most {self.limit} chats may run at once on one socket")
        chat = parse_chat_request(frame)
        api_key = check_api_key(self.profile)
        events = stream_chat(
            chat, api_key, self.request.app[openrouter_key], transport="ws", chat_id=chat_id
        )
        self.running[chat_id] = asyncio.create_task(self.relay(chat_id, events))

    async def relay(self, chat_id: str, events: AsyncGenerator[ChatEvent, None]) -> None:
        task = asyncio.current_task()
        answered = False
        try:
            # Text frames are the per-token path: their JSON head is encoded once per chat.
            encoded_id = orjson.dumps(chat_id)
            heads = {
                kind: b'{"type":"' + kind.encode() + b'","id":' + encoded_id + b',"content":'
                for kind in ("delta", "reasoning")
            }
            # Admitted inside the task: a task cancelled before it ran has taken no slot.
            lease = await admit_chat(self.request, self.profile)
            async with lease, running_chat(self.request.app), aclosing(events):
                async for event in events:
                    if isinstance(event, Done):
                        await self.send(done_frame(chat_id, event))
                        # Its one terminal frame is out: a cancel or a reused id no longer
                        # concerns this task, which only winds upstream's connection down.
                        answered = True
                        self.forget(chat_id)
                    else:
                        await self.send_encoded(
                            heads[event.kind] + orjson.dumps(event.content) + b"}"
                        )
        except asyncio.CancelledError:
            if task not in self.cancelled:
                raise
            # The upstream request is closed by now (aclosing); tell the page it stopped.
            await self.send(
                {"type": "done", "id": chat_id, "finish_reason": "cancelled", "usage": None}
            )
        except ChatError as error:
            if not answered:
                await self.send(error_frame(chat_id, error))
        except ConnectionResetError:
            pass  # the socket closed under a send: the core logs the chat as cancelled
        except Exception:
            log.exception("chat failed id=%s", chat_id)
            if not answered:
                await self.send(error_frame(chat_id, InternalError()))
        finally:
            self.forget(chat_id)
            self.cancelled.discard(task)

    def forget(self, chat_id: str) -> None:
        """Take the current task off the running chats (not a newer chat reusing its id)."""
        if self.running.get(chat_id) is asyncio.current_task():
            del self.running[chat_id]

    async def cancel_chat(self, chat_id: str | None) -> None:
        if chat_id is None:
            raise BadRequest("A cancel frame needs the id of the chat to stop")
        task = self.running.get(chat_id)
        # A chat that already ended has sent its one done or error frame: nothing more to say.
        if task is None or task.done():
            return
        self.cancelled.add(task)
        task.cancel()
        await asyncio.wait([task])

    async def close(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


async def chat_ws(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[settings_key]
    # The session is read at the handshake: a key saved later needs a new socket.
    profile = await request_profile(request)
    ws = ChatWebSocketResponse(
        heartbeat=settings.ws_heartbeat_s,
        # aiohttp refuses a message of max_msg_size itself; a frame of MAX_BODY_BYTES is fine.
        max_msg_size=settings.max_body_bytes + 1,
        compress=False,
        # What a slow reader's socket may buffer before sends wait (aiohttp's default 256 KiB).
        writer_limit=WRITER_LIMIT_BYTES,
    )
    async with socket_slot(request):
        await ws.prepare(request)
        request.app[sockets_key].add(ws)
        sockets_open = request.app[metrics_key].sockets_open
        sockets_open.inc()
        socket = ChatSocket(request, ws, profile)
        try:
            await socket.receive_frames()
        finally:
            sockets_open.dec()
            await socket.close()
    return ws


def setup_ws_route(app: web.Application) -> None:
    app[sockets_key] = weakref.WeakSet()
    app.router.add_get("/api/chat/ws", chat_ws)
