"""The history routes of a signed-in account (SPEC "History and sync"): conversations,
their messages, import and export, and `GET /api/sync`. Each handler checks its input and
calls server/users/; the account is always the signed-in one, never one named in the request.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.errors import BadRequest
from server.users.history import MAX_PAGE
from server.users.history_rows import query_flag, whole_number
from server.users.transfer import export_json, export_markdown, import_conversations
from server.web.history_service import account_id_of, history_key
from server.web.http_io import expect_within_limit, json_response, read_json

# The largest version a client may name: what fits a signed 64-bit column.
MAX_VERSION = 2**63 - 1


async def json_object(request: web.Request) -> dict[str, Any]:
    # Every field of these bodies is optional: no body at all is the empty object.
    if not request.body_exists:
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    return body


async def list_conversations(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    query = request.query
    limit = whole_number(query.get("limit"), "limit", 1, MAX_PAGE, 50)
    archived = query_flag(query.get("archived"), "archived")
    found = await request.app[history_key].list(
        account_id, limit, query.get("before") or None, archived, query.get("q")
    )
    return json_response(found)


async def create_conversation(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    body = await json_object(request)
    made = await request.app[history_key].create_conversation(account_id, body)
    return json_response(made, status=201)


async def get_conversation(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    found = await request.app[history_key].conversation(account_id, request.match_info["id"])
    return json_response(found)


async def patch_conversation(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    body = await json_object(request)
    changed = await request.app[history_key].update_conversation(
        account_id, request.match_info["id"], body
    )
    return json_response(changed)


async def delete_conversation(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    await request.app[history_key].delete_conversation(account_id, request.match_info["id"])
    return web.Response(status=204)


async def add_message(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    body = await json_object(request)
    made = await request.app[history_key].add_message(account_id, request.match_info["id"], body)
    return json_response(made, status=201)


async def import_file(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    body = await read_json(request)
    return json_response(await import_conversations(request.app[history_key], account_id, body))


async def export_conversation(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    form = request.query.get("format", "json")
    if form not in ("json", "md"):
        raise BadRequest("format must be json or md")
    found = await request.app[history_key].conversation(account_id, request.match_info["id"])
    name, text = export_markdown(found) if form == "md" else export_json(found)
    content_type = "text/markdown" if form == "md" else "application/json"
    return web.Response(
        text=text,
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def sync(request: web.Request) -> web.Response:
    account_id = await account_id_of(request)
    since = whole_number(request.query.get("since"), "since", 0, MAX_VERSION, 0)
    return json_response(await request.app[history_key].sync(account_id, since))


def setup_history_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/conversations", list_conversations)
    router.add_post("/api/conversations", create_conversation, expect_handler=expect_within_limit)
    router.add_post("/api/conversations/import", import_file, expect_handler=expect_within_limit)
    router.add_get("/api/conversations/{id}", get_conversation)
    router.add_patch(
        "/api/conversations/{id}", patch_conversation, expect_handler=expect_within_limit
    )
    router.add_delete("/api/conversations/{id}", delete_conversation)
    router.add_post(
        "/api/conversations/{id}/messages", add_message, expect_handler=expect_within_limit
    )
    router.add_get("/api/conversations/{id}/export", export_conversation)
    router.add_get("/api/sync", sync)
