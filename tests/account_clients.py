"""What the account tests share: a browser of its own (a cookie jar) on a running app, and
the account routes as a user calls them."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from yarl import URL

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse correct"

Client = TestClient[Any, Any]


class Browser:
    """One browser (its own cookies) talking to one server: `client`'s, or `url`."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        # unsafe: the jar keeps cookies of an IP address such as 127.0.0.1.
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers
        )

    @classmethod
    def of(cls, client: Client, headers: dict[str, str] | None = None) -> Browser:
        return cls(str(client.make_url("/")), headers)

    async def call(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """Status, parsed JSON body (None when empty) and the response."""
        if body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.url + path, **kwargs) as response:
            raw = await response.read()
            data = (
                await response.json(content_type=None)
                if raw and response.content_type == "application/json"
                else None
            )
            return response.status, data, response

    async def sign_up(self, email: str, password: str = PASSWORD, **more: Any) -> dict[str, Any]:
        status, data, _ = await self.call(
            "POST", "/api/accounts", {"email": email, "password": password, **more}
        )
        assert status == 201, (status, data)
        account: dict[str, Any] = data["account"]
        return account

    async def sign_in(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        status, data, _ = await self.call(
            "POST", "/api/session", {"email": email, "password": password}
        )
        assert status == 200, (status, data)
        account: dict[str, Any] = data["account"]
        return account

    async def account(self) -> dict[str, Any] | None:
        status, data, _ = await self.call("GET", "/api/session")
        assert status == 200, (status, data)
        account: dict[str, Any] | None = data["account"]
        return account

    async def invite(self, email: str | None = None) -> str:
        """An invite's token, made by this (admin's) browser."""
        status, data, _ = await self.call(
            "POST", "/api/admin/invites", {} if email is None else {"email": email}
        )
        assert status == 201, (status, data)
        token: str = data["url"].rpartition("invite=")[2]
        return token

    async def make_token(self, name: str = "script") -> dict[str, Any]:
        status, data, _ = await self.call("POST", "/api/tokens", {"name": name})
        assert status == 201, (status, data)
        made: dict[str, Any] = data
        return made

    def cookies(self) -> dict[str, str]:
        return {cookie.key: cookie.value for cookie in self.session.cookie_jar}

    def set_cookies(self, cookies: dict[str, str]) -> None:
        self.session.cookie_jar.clear()
        self.session.cookie_jar.update_cookies(cookies, URL(self.url))

    async def close(self) -> None:
        await self.session.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
