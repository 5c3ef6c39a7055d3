"""The profile of a request: which OpenRouter key it may use. Both transports call this."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp_session import STORAGE_KEY, get_session

from .config import settings_key
from .errors import KeyNotFound

SESSION_KEY_FIELD = "openrouter_api_key"
# Who started a chat: only the same session may resume or stop it (server/runs.py).
SESSION_OWNER_FIELD = "chat_owner"

# "bearer": a /v1 caller's own key, sent as its Authorization (server/openai_api.py).
KeySource = Literal["session", "server", "bearer"]


@dataclass(frozen=True, slots=True)
class Profile:
    api_key: str | None
    source: KeySource | None

    def public_view(self) -> dict[str, Any]:
        """What the profile routes answer: never the key, only its last four characters."""
        hint = "…" + self.api_key[-4:] if self.api_key else None
        return {
            "openrouter_api_key_set": self.api_key is not None,
            "source": self.source,
            "hint": hint,
        }


async def request_profile(request: web.Request) -> Profile:
    """The key saved in the user's encrypted session, else the server-wide key."""
    session = await get_session(request)
    saved = session.get(SESSION_KEY_FIELD)
    if isinstance(saved, str) and saved:
        return Profile(saved, "session")
    server_key = request.app[settings_key].openrouter_api_key
    if server_key:
        return Profile(server_key, "server")
    return Profile(None, None)


def check_api_key(profile: Profile) -> str:
    """The key to call upstream with, or KeyNotFound (401, the seed's message)."""
    if not profile.api_key:
        raise KeyNotFound()
    return profile.api_key


async def chat_owner(request: web.Request, *, create: bool = False) -> str | None:
    """The session's random owner id of its chats; made (`create`) when it has none yet.

    GET /api/profile, which the page calls before it opens its socket, creates it, so a
    page's chats are always owned by its session.
    """
    session = await get_session(request)
    owner = session.get(SESSION_OWNER_FIELD)
    if isinstance(owner, str) and owner:
        return owner
    if not create:
        return None
    owner = session[SESSION_OWNER_FIELD] = secrets.token_hex(16)
    return owner


async def socket_chat_owner(request: web.Request, handshake: web.StreamResponse) -> str:
    """The owner id for a WebSocket's chats, made and set as a cookie on the handshake
    when the session had none (aiohttp-session's middleware leaves prepared responses be)."""
    owner = await chat_owner(request)
    if owner is None:
        owner = await chat_owner(request, create=True)
        await request[STORAGE_KEY].save_session(request, handshake, await get_session(request))
    assert owner is not None
    return owner
