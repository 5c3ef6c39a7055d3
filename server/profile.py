"""The profile of a request: which OpenRouter key it may use. Both transports call this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp_session import get_session

from .config import settings_key
from .errors import KeyNotFound

SESSION_KEY_FIELD = "openrouter_api_key"

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
