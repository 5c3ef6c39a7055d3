"""The small JSON routes: health, the profile (the user's saved key) and the models list."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from .config import settings_key
from .errors import BadRequest
from .openrouter import openrouter_key
from .profile import SESSION_KEY_FIELD, chat_owner, request_profile
from .web_json import json_response, read_json

MAX_KEY_CHARS = 512


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


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
    # The key goes into an Authorization header: only visible ASCII can travel there.
    if len(key) > MAX_KEY_CHARS or not all("!" <= c <= "~" for c in key):
        raise BadRequest(
            f"openrouter_api_key must be at most {MAX_KEY_CHARS} printable ASCII characters "
            "without spaces"
        )
    session = await get_session(request)
    if key:
        session[SESSION_KEY_FIELD] = key
    else:
        session.pop(SESSION_KEY_FIELD, None)
    return await get_profile(request)


async def delete_profile(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.pop(SESSION_KEY_FIELD, None)
    return await get_profile(request)


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
    return json_response({"data": await cached_models(request, profile.api_key)})


def setup_routes(app: web.Application) -> None:
    app[models_cache_key] = ModelsCache(app[settings_key].models_cache_s)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/profile", get_profile)
    app.router.add_put("/api/profile", put_profile)
    app.router.add_delete("/api/profile", delete_profile)
    app.router.add_get("/api/models", get_models)
