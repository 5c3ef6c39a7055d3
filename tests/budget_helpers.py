"""What the budget tests share: signing up over the API, a wall clock the tests move,
replies with a chosen cost, and reading an account's budget as GET /api/session shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Client
from tests.fake_openrouter import COMMENT, Reply, Step, chunk, event

PASSWORD = "correct horse battery staple"


class WallClock:
    """Stands in for the budgets' UTC clock: time moves only when the test says."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def december() -> WallClock:
    return WallClock(datetime(2026, 12, 6, 12, 0, tzinfo=UTC))


async def sign_up(client: Client, email: str = "ann@example.com") -> str:
    """A new account, signed in on `client`'s cookie jar; its id."""
    response = await client.post("/api/accounts", json={"email": email, "password": PASSWORD})
    assert response.status == 201, await response.text()
    account_id: str = (await response.json())["account"]["id"]
    return account_id


async def set_budget(admin: Client, account_id: str, usd: float | None) -> None:
    response = await admin.patch(f"/api/admin/accounts/{account_id}", json={"budget_usd": usd})
    assert response.status == 200, await response.text()


async def budget(client: Client) -> dict[str, Any]:
    response = await client.get("/api/session")
    assert response.status == 200, await response.text()
    shown: dict[str, Any] = (await response.json())["budget"]
    return shown


def costing(cost: float, tokens: list[str] | None = None, *, hold: Step | None = None) -> Reply:
    """A healthy answer whose usage says it cost `cost` US dollars; `hold` (an Event) keeps it
    from finishing until the test sets it."""
    usage = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7, "cost": cost}
    steps: list[Step] = [COMMENT]
    steps += [event(chunk(token)) for token in tokens or ["Hi", " there"]]
    if hold is not None:
        steps.append(hold)
    steps += [
        event(chunk(finish_reason="stop")),
        event(chunk(finish_reason="stop", usage=usage)),
        event("[DONE]"),
    ]
    return Reply(steps=steps)
