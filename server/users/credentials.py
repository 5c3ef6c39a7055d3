"""What proves who someone is, and what is kept of it: Argon2id password hashes, random
tokens kept only as SHA-256 digests, and the account's OpenRouter key encrypted with a key
derived from SESSION_SECRET (HKDF, a label of its own, so no cookie key opens it)."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# OWASP's first Argon2id setting (19 MiB, 2 passes, 1 lane): about 30 ms a hash here, so a
# sign-in stays well under half a second on a loaded machine (bench/README.md).
PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
PERSONAL_TOKEN_PREFIX = "crt_"
KEY_LABEL = b"chatrelay account openrouter key"


@functools.cache
def dummy_hash() -> str:
    """A hash to check unknown emails against: they cost what a wrong password costs."""
    return PASSWORDS.hash(secrets.token_hex(16))


async def hash_password(password: str) -> str:
    # In a thread: a hash takes tens of milliseconds the loop must not stand still for.
    return await asyncio.to_thread(PASSWORDS.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return PASSWORDS.verify(stored or dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; with None (no such account) it takes as long
    and is False."""
    return await asyncio.to_thread(_verify, stored, password)


def new_token(prefix: str = "") -> str:
    """256 random bits, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def new_id() -> str:
    return secrets.token_hex(16)


def digest(token: str) -> str:
    """What is kept of a token: its SHA-256 (the token is random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def is_personal_token(text: str) -> bool:
    return text.startswith(PERSONAL_TOKEN_PREFIX)


class KeyBox:
    """Encrypts the OpenRouter keys kept in accounts; the database never holds one in clear."""

    def __init__(self, session_secret: str) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_LABEL)
        derived = hkdf.derive(base64.urlsafe_b64decode(session_secret.encode()))
        self.fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, key: str) -> str:
        return self.fernet.encrypt(key.encode()).decode()

    def open(self, sealed: str) -> str | None:
        """The key, or None when it was sealed under another SESSION_SECRET."""
        try:
            return self.fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None
