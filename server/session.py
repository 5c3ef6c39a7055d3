"""The encrypted session cookie, marked Secure whenever the request came over HTTPS."""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage


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
