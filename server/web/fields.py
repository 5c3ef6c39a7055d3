"""The account routes' body fields, each checked once: a 400 that names the field."""

from __future__ import annotations

import re
from typing import Any

from server.config import MAX_BUDGET_USD
from server.errors import BadRequest

MAX_EMAIL_CHARS = 254
PASSWORD_CHARS = (10, 256)
MAX_NAME_CHARS = 100
# A sane shape, not RFC 5322: something@host.domain, no spaces or control characters.
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def json_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    return body


def string_field(data: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def email_field(data: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if (
        not isinstance(value, str)
        or len(value.strip()) > MAX_EMAIL_CHARS
        or not value.strip().isprintable()
        or not EMAIL.fullmatch(value.strip())
    ):
        raise BadRequest(f"{name} must be an email address of at most {MAX_EMAIL_CHARS} characters")
    return value.strip()


def password_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    low, high = PASSWORD_CHARS
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise BadRequest(f"{name} must be a string of {low} to {high} characters")
    return value


def name_field(data: dict[str, Any], name: str, *, optional: bool = True) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value.strip()) <= MAX_NAME_CHARS
        or not value.isprintable()
    ):
        raise BadRequest(f"{name} must be a string of 1 to {MAX_NAME_CHARS} printable characters")
    return value.strip()


def flag_field(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def dollars_field(data: dict[str, Any], name: str) -> float | None:
    """A budget in US dollars: a number from 0 to MAX_BUDGET_USD, or null (none of its own)."""
    value = data.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_BUDGET_USD  # NaN and infinities too
    ):
        raise BadRequest(
            f"{name} must be a number of US dollars from 0 to {MAX_BUDGET_USD}, or null"
        )
    return float(value)
