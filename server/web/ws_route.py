"""GET /api/chat/ws: chats started, followed, resumed and cancelled over one socket.

Each chat the socket follows is a listener task reading the chat's log (server/store/events.py)
and writing it as JSON text frames; closing the socket ends the listeners, not the chats.
A frame over the limit gets its 1009 close as a frame the client can read, not a reset.

It stays whole (over 300 lines): its frame writers and the handshake exist only for
ChatSocket, whose chats and listeners share the one socket's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp_session import SESSION_KEY

from server.config import settings_key
from server.errors import (
    BadRequest,
    ChatError,
    ChatIdInUse,
    ChatNotFound,
    InternalError,
    TooManyChats,
)
from server.metrics import metrics_key
from server.registry import registry_key
from server.relay.request import parse_chat_request
from server.relay.runs import chat_key, runs_key
from server.store.events import (
    Delta,
    Done,
    Failed,
    LogEvent,
    Raw,
    Reasoning,
    Text,
    chat_store_key,
    merged,
)
from server.web.budget_gate import capped, metered
from server.web.chat_start import start_chat_run
from server.web.history_service import hear_sync, signed_in_account_id
from server.web.http_io import decode_json
from server.web.identity import request_identity
from server.web.limits import admit_chat, take_socket_slot
from server.web.profile import Profile, check_api_key, request_profile, socket_chat_owner
from server.web.request_clock import clock_of
from server.web.revocation import watch_socket

log = logging.getLogger(__name__)

MAX_ID_CHARS = 64
WRITER_LIMIT_BYTES = 64 * 1024
# The rest of an oversized frame is still on its way when aiohttp refuses it; closing the
# socket on top of it makes the kernel answer with a reset, and the client never reads the
# 1009. So the server first waits until the client has sent nothing for QUIET_S (what it
# sends meanwhile is read and dropped), for LINGER_S at most.
QUIET_S = 0.2
LINGER_S = 5.0
# Served without the request clock (aiohttp's test server), nothing tells when the client
# stopped: a short fixed wait instead.
UNCLOCKED_LINGER_S = 0.5


class ChatWebSocketResponse(web.WebSocketResponse):
    """Reads out an oversized message before closing with MESSAGE_TOO_BIG (1009)."""

    # A slot, not an attribute: one more key in the response's __dict__ made Python copy
    # that dict when aiohttp set its own `_waiting` later, 1.5 KiB per open socket.
    __slots__ = ("_request",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._request: web.BaseRequest | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter:
        self._request = request
        return await super().prepare(request)

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not self.closed:
            await self._linger()
        return await super().close(code=code, message=message, drain=drain)

    async def _linger(self) -> None:
        request = self._request
        clock = clock_of(request) if isinstance(request, web.Request) else None
        if clock is not None:
            await clock.wait_quiet(QUIET_S, LINGER_S)
        else:
            await asyncio.sleep(UNCLOCKED_LINGER_S)


def error_frame(chat_id: str | None, error: ChatError) -> dict[str, Any]:
    return {"type": "error", "id": chat_id, **error.to_dict()}


class ChatFrames:
    """One chat's frames. Text frames are the per-token path: their JSON head is encoded
    once per chat, and each frame is that head, the seq and the content."""

    __slots__ = ("chat_id", "delta_head", "reasoning_head")

    def __init__(self, chat_id: str) -> None:
        self.chat_id = chat_id
        encoded_id = orjson.dumps(chat_id)
        self.delta_head = b'{"type":"delta","id":' + encoded_id + b',"seq":'
        self.reasoning_head = b'{"type":"reasoning","id":' + encoded_id + b',"seq":'

    def text(self, seq: int, event: Text) -> bytes:
        # One bytes formatting, not four concatenations and a str: about half the time.
        head = self.delta_head if type(event) is Delta else self.reasoning_head
        return head + b'%d,"content":%b}' % (seq, orjson.dumps(event.content))

    def encode(self, first_seq: int, events: Sequence[LogEvent]) -> list[bytes]:
        frames = []
        for seq, event in merged(first_seq, events):
            if isinstance(event, Done):
                frame = {"type": "done", "id": self.chat_id, "seq": seq}
                frame |= {"finish_reason": event.finish_reason, "usage": event.usage}
                frames.append(orjson.dumps(frame))
            elif isinstance(event, Failed):
                frame = {"type": "error", "id": self.chat_id, "seq": seq, **event.to_dict()}
                frames.append(orjson.dumps(frame))
            elif not isinstance(event, Raw):  # a /v1/responses log's, never a socket's
                frames.append(self.text(seq, event))
        return frames


class LiveFrames:
    """One chat's listener as a live one (server/store/events.py): a read the socket keeps up
    with is written from the run's task, no wake-up of the listener's per token."""

    __slots__ = ("frames", "transport", "ws")

    def __init__(self, socket: ChatSocket, frames: ChatFrames) -> None:
        self.ws, self.frames = socket.ws, frames
        # Looked up once per chat, not per token: the connection's transport is the same
        # for the socket's life, and says it is closing once the connection is lost.
        self.transport = socket.request.transport

    def ready(self) -> bool:
        transport = self.transport
        return (
            transport is not None
            and not transport.get_write_buffer_size()
            and not transport.is_closing()
            and not self.ws.closed
        )

    async def write(self, first_seq: int, events: Sequence[LogEvent]) -> None:
        if len(events) == 1:  # the per-token path: one read, one piece of text
            event = events[0]
            if type(event) is Delta or type(event) is Reasoning:
                await self.ws.send_frame(self.frames.text(first_seq, event), WSMsgType.TEXT)
                return
        for frame in self.frames.encode(first_seq, events):
            await self.ws.send_frame(frame, WSMsgType.TEXT)


class ChatSocket:
    """One browser's socket: reads frames, follows each of its chats with a listener task."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        profile: Profile,
        owner: str,
        account_id: str | None = None,
    ) -> None:
        self.request, self.ws, self.profile, self.owner = request, ws, profile, owner
        self.account_id = account_id
        self.app = request.app
        self.limit = self.app[settings_key].max_chats_per_socket
        self.following: dict[str, asyncio.Task[None]] = {}

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_encoded(orjson.dumps(frame))

    async def send_encoded(self, frame: bytes) -> None:
        if not self.ws.closed:
            # send_json_bytes would send a binary frame; SPEC wants text frames.
            await self.ws.send_frame(frame, WSMsgType.TEXT)

    async def receive_frames(self) -> None:
        while True:  # not `async for`: its __anext__ would be one more frame per idle socket
            message = await self.ws.receive()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if message.type is WSMsgType.TEXT:
                await self.handle_text(message.data)
            elif message.type is WSMsgType.BINARY:
                await self.send(
                    error_frame(None, BadRequest("Binary frames are not accepted; send JSON text"))
                )
            # Not held while waiting for the next one: a chat frame is as big as its request,
            # which the running chat already holds, encoded (SPEC "Limits").
            del message

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
                await self.start_chat(readable_id or secrets.token_hex(8), frame)
            elif kind == "cancel":
                await self.cancel_chat(readable_id)
            elif kind == "resume":
                await self.resume_chat(readable_id, frame.get("after"))
            else:
                raise BadRequest("type must be chat or cancel or resume")
        except ChatError as error:
            await self.send(error_frame(readable_id, error))
        except Exception:
            # One frame that trips a bug must not end the socket and every chat on it.
            log.exception("frame failed")
            await self.send(error_frame(readable_id, InternalError()))

    def check_room(self, chat_id: str) -> None:
        if chat_id in self.following:
            raise ChatIdInUse(f"A chat with id {chat_id} is still running on this socket")
        if len(self.following) >= self.limit:
            raise TooManyChats(f"At most {self.limit} chats may run at once on one socket")

    async def start_chat(self, chat_id: str, frame: dict[str, Any]) -> None:
        self.check_room(chat_id)
        chat = parse_chat_request(frame)
        api_key = check_api_key(self.profile)
        lease = await admit_chat(self.request, self.profile)
        messages = frame.get("messages")
        meter = await metered(
            self.request,
            self.profile,
            lease,
            self.account_id,
            chat.model,
            messages,
            chat.max_tokens,
        )
        chat = capped(chat, meter)
        key = chat_key(self.owner, chat_id)
        conversation = frame.get("conversation")
        await start_chat_run(
            self.app,
            key,
            chat_id,
            "ws",
            chat,
            api_key,
            lease,
            account_id=self.account_id,
            conversation=conversation,
            meter=meter,
        )
        self.follow(chat_id, key, 0)

    async def resume_chat(self, chat_id: str | None, after: object) -> None:
        if chat_id is None:
            raise BadRequest("A resume frame needs the id of the chat to follow")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise BadRequest("after must be a whole number of 0 or more (the last seq seen)")
        self.check_room(chat_id)
        # The HTTP resume's rule: the socket's session's chat, or a POST's anonymous one.
        key = await self.app[runs_key].find(self.owner, chat_id)
        self.follow(chat_id, key, after)

    async def cancel_chat(self, chat_id: str | None) -> None:
        if chat_id is None:
            raise BadRequest("A cancel frame needs the id of the chat to stop")
        # A chat that already ended has sent its one done or error frame: nothing more to
        # say, and nothing for an unknown id either.
        with contextlib.suppress(ChatNotFound):
            key = await self.app[runs_key].find(self.owner, chat_id)
            await self.app[chat_store_key].cancel(key)

    def follow(self, chat_id: str, key: str, after: int) -> None:
        task = asyncio.create_task(self.relay(chat_id, key, after))
        self.following[chat_id] = task
        self.app[registry_key].add_listener(task)

    async def relay(self, chat_id: str, key: str, after: int) -> None:
        frames = ChatFrames(chat_id)
        live = LiveFrames(self, frames)
        try:
            async for first_seq, events in self.app[chat_store_key].read(key, after, live):
                if isinstance(events[-1], Done | Failed):
                    # Its one final frame goes out now: the id is free for a new chat.
                    self.forget(chat_id)
                for frame in frames.encode(first_seq, events):
                    await self.send_encoded(frame)
        except ChatError as error:  # the store lost the chat (expired, Redis down)
            await self.send(error_frame(chat_id, error))
        except ConnectionResetError:
            pass  # the socket closed under a send: the chat goes on without this listener
        except Exception:
            # A listener that trips a bug ends its own chat's frames, not the socket's others.
            log.exception("listener of chat %s failed", chat_id)
            if self.following.get(chat_id) is asyncio.current_task():  # no final frame yet
                with contextlib.suppress(ConnectionResetError):
                    await self.send(error_frame(chat_id, InternalError()))
        finally:
            self.forget(chat_id)

    def forget(self, chat_id: str) -> None:
        """Take the current task off the followed chats (not a newer one reusing its id)."""
        if self.following.get(chat_id) is asyncio.current_task():
            del self.following[chat_id]

    async def close(self) -> None:
        """The socket closed: its listeners stop; the chats go on (Durable chats)."""
        tasks = list(self.following.values())
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
    slot = await take_socket_slot(request)
    try:
        owner = await socket_chat_owner(request, ws)
        account_id = await signed_in_account_id(request)
        # The socket's chats need only the profile and the owner, both read by now: the
        # session itself would be memory held for the socket's whole life.
        request.pop(SESSION_KEY, None)
        await ws.prepare(request)
        # The handshake is on the wire: a new session's Set-Cookie (~0.4 KiB) need not stay.
        ws.headers.popall(hdrs.SET_COOKIE, None)
        registry = request.app[registry_key]
        registry.sockets.add(ws)
        sockets_open = request.app[metrics_key].sockets_open
        sockets_open.inc()
        socket = ChatSocket(request, ws, profile, owner, account_id)
        stop_hearing = hear_sync(request.app, account_id, ws)
        watch_socket(request.app, ws, await request_identity(request))
        try:
            await socket.receive_frames()
        finally:
            stop_hearing()
            sockets_open.dec()
            await socket.close()
    finally:
        if slot is not None:
            await slot.release()
    return ws


def setup_ws_route(app: web.Application) -> None:
    app.router.add_get("/api/chat/ws", chat_ws)
