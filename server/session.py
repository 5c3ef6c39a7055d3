"""The encrypted session cookie, marked Secure whenever the request came over HTTPS, and the
Fernet key it is encrypted with, made from SESSION_SECRET."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from aiohttp_session import Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# A platform's generated secret (Heroku's: 64 hex characters) is long enough to stretch; a
# shorter one could be guessed offline from any cookie, so start-up refuses it.
MIN_SECRET_CHARS = 32
HKDF_INFO = b"chatrelay session cookie"


def is_fernet_key(secret: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(secret.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


def fernet_key_for(secret: str) -> str:
    """A Fernet key as is; any other secret of MIN_SECRET_CHARS or more stretched into one
    with HKDF-SHA256 (the same on every process); ValueError for a shorter one."""
    if is_fernet_key(secret):
        return secret
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"must be a Fernet key or a secret of at least {MIN_SECRET_CHARS} characters "
            f"(this one has {len(secret)}); make one with: python -c "
            '"import secrets; print(secrets.token_hex(32))"'
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode())).decode()


class SessionCookieStorage(EncryptedCookieStorage):
    """Fernet-encrypted cookie storage; `Secure` follows the request's scheme.

    aiohttp-session fixes `secure` once per storage, but one server answers both plain
    loopback HTTP and HTTPS behind a proxy (whose scheme a proxy middleware restores in
    `request.scheme`): a Secure cookie over plain HTTP would never come back.
    """

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        await super().save_session(request, response, session)
        morsel = response.cookies.get(self.cookie_name)
        if morsel is not None and request.secure:
            morsel["secure"] = True
