"""Import and export in the page's own file format (server/static/js/transfer.js:
`{"format": "chatrelay.conversations", "conversations": [{id, title, updatedAt,
systemPrompt, messages: [...]}]}`), and one conversation as Markdown.

An import is idempotent by id: a conversation or message the account has is left as it is,
so importing a file twice adds nothing. Each conversation is checked whole before anything
is written; a broken one is skipped (its reason logged), the others go in, each in a
transaction.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select

from server.errors import BadRequest
from server.users.history import MAX_MESSAGES, History
from server.users.history_rows import checked_content, now_ms, tools_json
from server.users.history_tables import MAX_ID_CHARS, conversations, messages

log = logging.getLogger(__name__)

FORMAT = "chatrelay.conversations"
ROLES = ("user", "assistant", "system", "tool")
ENDED = ("done", "cancelled", "error")
MAX_NAMED_ERRORS = 100


class Broken(Exception):
    """An entry of the file that cannot be imported; the message says why."""


def derived_id(*parts: object) -> str:
    """An id for what the file left without one, the same at every import of the file."""
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]


def _id(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise Broken(f"{where}.id must be a string of at most {MAX_ID_CHARS} characters")
    return value


def _json(value: object) -> str | None:
    return orjson.dumps(value).decode() if isinstance(value, dict) else None


def _message(
    raw: object, where: str, conversation_id: str, index: int, parent_id: str | None, at: int
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Broken(f"{where} must be an object")
    message_id = _id(raw["id"], where) if "id" in raw else derived_id(conversation_id, index)
    role = raw.get("role")
    if role not in ROLES:
        raise Broken(f"{where}.role must be one of {', '.join(ROLES)}")
    content = raw.get("content") or ""
    images = raw.get("images")
    if isinstance(images, list) and images and isinstance(content, str):
        content = [{"type": "text", "text": content}] + [
            {"type": "image_url", "image_url": {"url": url}} for url in images
        ]
    try:
        text, parts = checked_content(content, f"{where}.content")
    except BadRequest as error:
        raise Broken(error.message) from None
    status = raw.get("status")
    if role != "assistant":
        status = "done"
    elif status not in ENDED:
        # An answer that was streaming in the exporting browser cannot go on here.
        status = "done" if status is None else "cancelled"
    failure = raw.get("error")
    row = {
        "id": message_id,
        "conversation_id": conversation_id,
        "parent_id": parent_id,
        "role": role,
        "text": text,
        "parts": parts,
        "status": status,
        "created_at": at,
        "reasoning": raw.get("reasoning") if isinstance(raw.get("reasoning"), str) else None,
        "model": raw.get("model") if isinstance(raw.get("model"), str) else None,
        "usage": orjson.dumps(raw["usage"]).decode()
        if isinstance(raw.get("usage"), dict)
        else None,
        # A script's function calls (/v1/responses), as this server's export names them.
        "tools": tools_json(
            {"tool_calls": raw.get("toolCalls"), "tool_call_id": raw.get("toolCallId")}
        ),
    }
    if status == "error":
        code = raw.get("errorStatus")
        row["error_status"] = code if isinstance(code, int) and 100 <= code <= 599 else 500
        row["error_message"] = failure if isinstance(failure, str) else "The answer failed"
    if isinstance(row["model"], str) and len(row["model"]) > 200:
        raise Broken(f"{where}.model must be at most 200 characters")
    return row


def parse_entry(raw: object, index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One conversation of the file as its row and its messages' rows (a chain, in order)."""
    where = f"conversations[{index}]"
    if not isinstance(raw, dict):
        raise Broken(f"{where} must be an object")
    conversation_id = _id(raw.get("id"), where)
    title = raw.get("title")
    if not isinstance(title, str) or len(title) > 500:
        raise Broken(f"{where}.title must be a string of at most 500 characters")
    updated = raw.get("updatedAt")
    at = int(updated) if isinstance(updated, int | float) and 0 < updated < 2**53 else now_ms()
    listed = raw.get("messages")
    if not isinstance(listed, list) or len(listed) > MAX_MESSAGES:
        raise Broken(f"{where}.messages must be a list of at most {MAX_MESSAGES} messages")
    rows: list[dict[str, Any]] = []
    system = raw.get("systemPrompt")
    if isinstance(system, str) and system.strip():
        rows.append(
            _message(
                {"id": derived_id(conversation_id, "system"), "role": "system", "content": system},
                f"{where}.systemPrompt",
                conversation_id,
                -1,
                None,
                at,
            )
        )
    for number, message in enumerate(listed):
        parent = rows[-1]["id"] if rows else None
        rows.append(
            _message(message, f"{where}.messages[{number}]", conversation_id, number, parent, at)
        )
    if len({row["id"] for row in rows}) != len(rows):
        raise Broken(f"{where}.messages has the same id twice")
    conversation = {"id": conversation_id, "title": title, "created_at": at, "updated_at": at}
    return conversation, rows


async def import_conversations(history: History, account_id: str, body: object) -> dict[str, Any]:
    listed = body.get("conversations") if isinstance(body, dict) else body
    if not isinstance(listed, list):
        raise BadRequest('The request body must be an export: {"conversations": [...]}')
    imported, skipped, broken = 0, 0, 0
    for index, raw in enumerate(listed):
        try:
            conversation, rows = parse_entry(raw, index)
        except (Broken, KeyError) as error:
            skipped += 1
            broken += 1
            # SPEC's answer is the two counts alone; why an entry was skipped goes to the
            # log (the reason names only the entry's place, never what the file says).
            if broken <= MAX_NAMED_ERRORS:
                reason = error if isinstance(error, Broken) else f"conversations[{index}]"
                log.info("import skipped account=%s: %s", account_id, reason)
            continue
        if await _write(history, account_id, conversation, rows):
            imported += 1
        else:
            skipped += 1
    return {"imported": imported, "skipped": skipped}


async def _write(
    history: History, account_id: str, conversation: dict[str, Any], rows: list[dict[str, Any]]
) -> bool:
    """Write what the account does not have yet; whether anything was."""
    async with history.writing(account_id) as versions:
        db = versions.db
        found = await db.execute(
            select(conversations.c.id).where(
                conversations.c.account_id == account_id, conversations.c.id == conversation["id"]
            )
        )
        new_conversation = found.one_or_none() is None
        have: set[str] = set()
        ids = [row["id"] for row in rows]
        for start in range(0, len(ids), 500):
            taken = await db.execute(
                select(messages.c.id, messages.c.conversation_id).where(
                    messages.c.account_id == account_id, messages.c.id.in_(ids[start : start + 500])
                )
            )
            for message_id, where in taken:
                # An id the account has in another conversation: its chain here would hang
                # from a message elsewhere, so the entry is skipped whole.
                if where != conversation["id"]:
                    return False
                have.add(message_id)
        fresh = [row for row in rows if row["id"] not in have]
        if not new_conversation and not fresh:
            return False
        if new_conversation:
            await db.execute(
                insert(conversations).values(
                    **conversation,
                    account_id=account_id,
                    pinned=False,
                    archived=False,
                    version=versions.take(),
                )
            )
        if fresh:
            await db.execute(
                insert(messages),
                [{**row, "account_id": account_id, "version": versions.take()} for row in fresh],
            )
    return True


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def shown_branch(found: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages from the root to the newest one: what the page shows of the tree."""
    listed = found["messages"]
    if not listed:
        return []
    by_id = {message["id"]: message for message in listed}
    branch: list[dict[str, Any]] = []
    message: dict[str, Any] | None = listed[-1]
    while message is not None and len(branch) <= len(listed):
        branch.append(message)
        message = by_id.get(message["parent_id"])
    return branch[::-1]


def _page_message(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    out: dict[str, Any] = {"id": message["id"], "role": message["role"]}
    if isinstance(content, list):
        out["content"] = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
        images = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        if images:
            out["images"] = images
    else:
        out["content"] = content
    for field in ("model", "reasoning", "usage"):
        if message.get(field) is not None:  # reasoning: only on an answer that has some
            out[field] = message[field]
    for field, name in (("tool_calls", "toolCalls"), ("tool_call_id", "toolCallId")):
        if field in message:
            out[name] = message[field]
    if message["role"] == "assistant":
        out["status"] = message["status"]
        if message["error"] is not None:
            out["error"] = message["error"]["message"]
            out["errorStatus"] = message["error"]["status"]
    return out


def file_name(title: str, suffix: str) -> str:
    # ASCII only: the name travels in a header.
    return (re.sub(r"[^A-Za-z0-9_-]+", "-", title).strip("-")[:40] or "conversation") + suffix


def export_json(found: dict[str, Any]) -> tuple[str, str]:
    conversation, branch = found["conversation"], shown_branch(found)
    system = [m for m in branch[:1] if m["role"] == "system" and isinstance(m["content"], str)]
    entry = {
        "id": conversation["id"],
        "title": conversation["title"],
        "updatedAt": _ms(conversation["updated_at"]),
        "systemPrompt": system[0]["content"] if system else "",
        "messages": [_page_message(m) for m in branch[len(system) :]],
    }
    data = {"format": FORMAT, "version": 1, "conversations": [entry]}
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
    return file_name(conversation["title"], ".json"), text


def export_markdown(found: dict[str, Any]) -> tuple[str, str]:
    conversation = found["conversation"]
    lines = [f"# {conversation['title']}", ""]
    for message in shown_branch(found):
        content = _page_message(message)["content"]
        if message["role"] == "system":
            lines += [f"> System: {content.strip()}", ""]
            continue
        model = f" ({message['model']})" if message["model"] else ""
        who = "You" if message["role"] == "user" else f"Assistant{model}"
        if message["role"] == "tool":
            who = f"Tool result ({message.get('tool_call_id', '')})"
        lines += [f"## {who}", "", content, ""]
        for call in message.get("tool_calls", []):
            function = call["function"] if isinstance(call.get("function"), dict) else {}
            called = f"{function.get('name', '')}({function.get('arguments', '')})"
            lines += [f"*Called {called} ({call.get('id', '')})*", ""]
        if message["error"] is not None:
            lines += [f"*Error: {message['error']['message']}*", ""]
    return file_name(conversation["title"], ".md"), "\n".join(lines)
