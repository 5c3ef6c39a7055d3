"""The profile of a request: which OpenRouter key it may use, and the routes that show it.

Both transports call `request_profile` and `check_api_key`; /api/profile saves the user's
key in the signed-in account (encrypted) or else in the session, and /api/models lists
upstream's models with the profile's key.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from aiohttp import hdrs, web
from aiohttp_session import STORAGE_KEY, get_session

from server.config import settings_key
from server.errors import BadRequest, KeyNotFound
from server.relay.upstream_client import openrouter_key
from server.users.accounts import update_account
from server.users.db import database_key
from server.web.http_io import expect_within_limit, json_response, read_json
from server.web.identity import Caller, caller_key, key_box_key, request_identity

SESSION_KEY_FIELD = "openrouter_api_key"
# Who started a chat: only the same session may resume or stop it (server/relay/runs.py).
SESSION_OWNER_FIELD = "chat_owner"
MAX_KEY_CHARS = 512

# "bearer": a /v1 caller's own key, sent as its Authorization (server/web/openai_api.py).
KeySource = Literal["account", "session", "server", "bearer"]


@dataclass(frozen=True, slots=True)
class Profile:
    api_key: str | None
    source: KeySource | None
    # The signed-in account (or personal token's) the chat is for: limits count per account.
    account_id: str | None = None

    def public_view(self) -> dict[str, Any]:
        """What the profile routes answer: never the key, only its last four characters."""
        hint = "…" + self.api_key[-4:] if self.api_key else None
        return {
            "openrouter_api_key_set": self.api_key is not None,
            "source": self.source,
            "hint": hint,
        }


async def request_profile(request: web.Request) -> Profile:
    """The key saved in the signed-in account, else the one in the user's encrypted
    session, else the server-wide key."""
    identity = await request_identity(request)
    account_id = None if identity is None else identity.account.id
    if identity is not None and identity.account.sealed_key is not None:
        key = request.app[key_box_key].open(identity.account.sealed_key)
        if key:
            return Profile(key, "account", account_id)
    session = await get_session(request)
    saved = session.get(SESSION_KEY_FIELD)
    if isinstance(saved, str) and saved:
        return Profile(saved, "session", account_id)
    server_key = request.app[settings_key].openrouter_api_key
    if server_key:
        return Profile(server_key, "server", account_id)
    return Profile(None, None, account_id)


def is_header_safe(key: str) -> bool:
    """A key goes into upstream's Authorization header: only visible ASCII travels there."""
    return len(key) <= MAX_KEY_CHARS and all("!" <= c <= "~" for c in key)


def check_api_key(profile: Profile) -> str:
    """The key to call upstream with, or KeyNotFound (401, the seed's message)."""
    if not profile.api_key:
        raise KeyNotFound()
    return profile.api_key


async def chat_owner(request: web.Request, *, create: bool = False) -> str | None:
    """The owner of the caller's chats: the signed-in account (any of its devices and
    tokens), else the session's random owner id, made (`create`) when it has none yet.

    GET /api/profile, which the page calls before it opens its socket, creates it, so a
    page's chats are always owned by its session.
    """
    identity = await request_identity(request)
    if identity is not None:
        return identity.owner
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
    identity = await request_identity(request)
    if identity is not None:
        return identity.owner
    owner = await chat_owner(request)
    if owner is None:
        owner = await chat_owner(request, create=True)
        # Saved on a scratch response and copied over as a header: a cookie set on the
        # handshake itself stays with it for the socket's life (its morsels, and one more
        # attribute that makes Python copy the response's __dict__): 2.4 KiB per socket.
        scratch = web.StreamResponse()
        await request[STORAGE_KEY].save_session(request, scratch, await get_session(request))
        for morsel in scratch.cookies.values():
            handshake.headers.add(hdrs.SET_COOKIE, morsel.OutputString())
    assert owner is not None
    return owner


async def get_profile(request: web.Request) -> web.Response:
    # The page calls this first: its session gets the owner id its chats will carry.
    await chat_owner(request, create=True)
    return json_response((await request_profile(request)).public_view())


async def put_profile(request: web.Request) -> web.Response:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object")
    key = data.get("openrouter_api_key")
    if not isinstance(key, str):
        raise BadRequest("openrouter_api_key must be a string")
    key = key.strip()
    if not is_header_safe(key):
        raise BadRequest(
            f"openrouter_api_key must be at most {MAX_KEY_CHARS} printable ASCII characters "
            "without spaces"
        )
    if await save_in_account(request, key or None):
        return await get_profile(request)
    session = await get_session(request)
    if key:
        session[SESSION_KEY_FIELD] = key
    else:
        session.pop(SESSION_KEY_FIELD, None)
    return await get_profile(request)


async def save_in_account(request: web.Request, key: str | None) -> bool:
    """Keep `key` (None: clear it) in the signed-in account, encrypted; False when the
    caller is not signed in."""
    identity = await request_identity(request)
    if identity is None:
        return False
    sealed = None if key is None else request.app[key_box_key].seal(key)
    async with request.app[database_key].transaction() as connection:
        account = await update_account(connection, identity.account.id, openrouter_key=sealed)
    request[caller_key] = Caller(replace(identity, account=account))
    return True


async def delete_profile(request: web.Request) -> web.Response:
    if await save_in_account(request, None):
        return await get_profile(request)
    session = await get_session(request)
    session.pop(SESSION_KEY_FIELD, None)
    return await get_profile(request)


# SPEC's fields of a model in GET /api/models; the cache keeps more (for the budgets).
MODEL_FIELDS = ("id", "name", "context_length", "pricing")


class ModelsCache:
    """The upstream models list, kept for `models_cache_s`; it is the same for every key."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.models: list[dict[str, Any]] | None = None
        self.fetched_at = 0.0

    def fresh(self) -> list[dict[str, Any]] | None:
        if self.models is not None and time.monotonic() - self.fetched_at < self.ttl_s:
            return self.models
        return None

    def store(self, models: list[dict[str, Any]]) -> None:
        self.models, self.fetched_at = models, time.monotonic()


models_cache_key = web.AppKey("models_cache", ModelsCache)


async def cached_models(request: web.Request, api_key: str | None) -> list[dict[str, Any]]:
    """Upstream's models list from the cache, fetched with `api_key` when it is stale."""
    cache = request.app[models_cache_key]
    models = cache.fresh()
    if models is None:
        models = await request.app[openrouter_key].list_models(api_key)
        cache.store(models)
    return models


async def get_models(request: web.Request) -> web.Response:
    profile = await request_profile(request)
    models = await cached_models(request, profile.api_key)
    return json_response({"data": [{k: m[k] for k in MODEL_FIELDS} for m in models]})


def setup_profile(app: web.Application) -> None:
    app[models_cache_key] = ModelsCache(app[settings_key].models_cache_s)
    app.router.add_get("/api/profile", get_profile)
    app.router.add_put("/api/profile", put_profile, expect_handler=expect_within_limit)
    app.router.add_delete("/api/profile", delete_profile)
    app.router.add_get("/api/models", get_models)
