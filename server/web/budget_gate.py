"""The budget at the door: a signed-in account's chat is priced and, on the server key,
its worst cost reserved before upstream is called; when it ends it is settled (SPEC "Budgets").

`metered` runs right after `admit_chat` (web/limits.py) in every transport and gives back a
Meter: its `max_tokens` is what goes upstream, and it settles once whatever the end, as the
run's hook (RunHook.ended, before the final event is logged) or, for /v1's stateless chats,
before their end is written. A chat that never started gives its hold back (`release`).

It stays whole past 300 lines: the Meter and the gate that makes it are one life cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from server.config import settings_key
from server.errors import ChatError
from server.metrics import ChatObserver
from server.relay.request import ChatRequest
from server.relay.runs import Run, RunHook
from server.store.events import Done, Final, LogEvent
from server.users.budgets import Budgets, Hold, SpendRecord
from server.users.costs import CHARS_PER_TOKEN, Price, price_of, prompt_chars, settled_cost, usd
from server.users.db import database_key
from server.users.periods import as_period, period_start, utc_now
from server.web.identity import request_identity
from server.web.limits import ChatLease
from server.web.profile import Profile, cached_models

log = logging.getLogger(__name__)

# At shutdown, how long the last settlements may take before the database closes.
SETTLE_WAIT_S = 5.0


class BudgetGate:
    """The app's budgets, the models already warned about, and settlements in flight."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.unpriced_warned: set[str] = set()
        self.settling: set[asyncio.Task[None]] = set()
        # The cached /models list last indexed by id, and that index: built once per fetch.
        self.indexed: list[dict[str, Any]] | None = None
        self.by_id: dict[str, dict[str, Any]] = {}

    def model(self, models: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
        """The model's entry (a variant such as `:nitro` is its base model's)."""
        if models is not self.indexed:
            self.indexed, self.by_id = models, {entry["id"]: entry for entry in models}
        return self.by_id.get(model) or self.by_id.get(model.partition(":")[0])

    def warn_unpriced(self, model: str) -> None:
        if model not in self.unpriced_warned and len(self.unpriced_warned) < 10_000:
            self.unpriced_warned.add(model)
            log.warning("budget: model %s has no known price: its chats are not metered", model)


budget_gate_key = web.AppKey("budget_gate", BudgetGate)


@dataclass(slots=True)
class Meter:
    """One chat of a signed-in account, from its admission to its settlement."""

    gate: BudgetGate
    account_id: str
    model: str
    key_source: str
    price: Price | None
    prompt_chars: int
    hold: Hold | None
    started_at: datetime
    done: bool = False
    # The chat's observer (set once it started), whose log line gets the account and cost.
    observer: ChatObserver | None = None

    @property
    def metered(self) -> bool:
        return self.hold is not None

    @property
    def max_tokens(self) -> int | None:
        return None if self.hold is None else self.hold.max_tokens

    @property
    def max_chars(self) -> int | None:
        """Where the relay cuts the chat (text and reasoning, in characters): its reserved
        max_tokens at settlement's 4 characters a token, so an upstream that ignores the
        max_tokens sent cannot settle it above its reservation. None: nothing is held."""
        hold = self.hold
        if hold is None or hold.hold_id is None or hold.max_tokens is None:
            return None
        return hold.max_tokens * CHARS_PER_TOKEN

    def seen(self, events: Sequence[LogEvent]) -> None:
        """A RunHook's per-read call: the observer already counts what was relayed."""

    async def ended(self, final: Final) -> None:
        """A RunHook's end: settle with what upstream said, or what was relayed."""
        await self.settle_done(final.usage if isinstance(final, Done) else None)

    async def settle_done(self, usage: dict[str, Any] | None) -> None:
        """A stateless chat (/v1) ended well: settle before its client hears the end."""
        await self.settle(usage, 0 if self.observer is None else self.observer.chars)

    async def settle(self, usage: dict[str, Any] | None, relayed_chars: int) -> None:
        """The chat ended: record its cost and turn its hold into it, once."""
        if self.done:
            return
        self.done = True
        cost = settled_cost(self.price, usage, self.prompt_chars, relayed_chars)
        observer = self.observer
        if observer is not None:
            observer.account_id = self.account_id
            observer.cost_usd = None if cost is None else usd(cost)
            if cost and observer.metrics is not None:
                observer.metrics.spend.inc(usd(cost))
        budgets = self.gate.budgets
        hold = self.hold
        start = hold.start if hold is not None else period_start(self.started_at, budgets.period)
        record = SpendRecord(
            account_id=self.account_id,
            model=self.model,
            key_source=self.key_source,
            metered=self.metered,
            start=start,
            prompt_tokens=_tokens(usage, "prompt_tokens"),
            completion_tokens=_tokens(usage, "completion_tokens"),
            cost=cost,
            started_at=self.started_at,
            ended_at=budgets.clock(),
        )
        # A task of its own, waited for at cleanup: a shutdown that cancels the chat's task
        # again must not cut the settlement in half.
        task = asyncio.create_task(self._write(hold, record))
        self.gate.settling.add(task)
        task.add_done_callback(self.gate.settling.discard)
        await asyncio.shield(task)

    async def _write(self, hold: Hold | None, record: SpendRecord) -> None:
        try:
            await self.gate.budgets.settle(hold, record)
        except ChatError as error:
            # Its hold expires after the longest chat; the spend row is what is lost.
            log.warning("budget: chat not settled account=%s: %s", self.account_id, error.message)

    async def release(self) -> None:
        """The chat never reached upstream: nothing spent, the hold goes back."""
        if self.done:
            return
        self.done = True
        if self.hold is not None:
            try:
                await self.gate.budgets.release(self.hold)
            except ChatError as error:
                log.warning(
                    "budget: hold not released account=%s: %s", self.account_id, error.message
                )


def _tokens(usage: dict[str, Any] | None, name: str) -> int | None:
    value = usage.get(name) if usage else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def model_price(request: web.Request, api_key: str | None, model: str) -> Price | None:
    """The model's price from the cached `/models` (a variant such as `:nitro` at its base's)."""
    models = await cached_models(request, api_key)
    return price_of(request.app[budget_gate_key].model(models, model))


async def meter_chat(
    request: web.Request,
    profile: Profile,
    account_id: str | None,
    model: str,
    messages: object,
    requested_max_tokens: int | None,
) -> Meter | None:
    """A Meter for a signed-in account's chat (None without an account).

    On the server key with a priced model the worst cost is reserved: BudgetExceeded (402)
    when not even a short answer is affordable, AccountStoreUnavailable (503) when the
    database is away. The user's own key holds nothing; its cost is recorded at the end.
    """
    if account_id is None:
        return None
    gate = request.app[budget_gate_key]
    chars = prompt_chars(messages)
    if profile.source != "server":
        try:
            price = await model_price(request, profile.api_key, model)
        except ChatError:
            price = None  # only the cost shown is at stake: usage.cost usually says it
        return Meter(gate, account_id, model, "own", price, chars, None, gate.budgets.clock())
    try:
        price = await model_price(request, profile.api_key, model)
    except ChatError:
        # Upstream's /models unreachable or refused: the price is unknown, and SPEC's rule
        # for a model without a known price holds (not metered, said once); the chat's
        # usage.cost is still recorded at its end. Failing the chat instead would shut every
        # signed-in user out of a server whose upstream serves no /models.
        price = None
    if price is None:
        gate.warn_unpriced(model)
        return Meter(gate, account_id, model, "server", None, chars, None, gate.budgets.clock())
    started_at = gate.budgets.clock()
    identity = await request_identity(request)  # read once per request already
    if (
        gate.budgets.default is None
        and identity is not None
        and identity.account.budget_usd is None
    ):
        # No limit anywhere, as this request's own read of the account says: nothing to hold,
        # and no transaction at the chat's start.
        hold = gate.budgets.unlimited(account_id, requested_max_tokens)
    else:
        hold = await gate.budgets.reserve(account_id, price, chars, requested_max_tokens)
    return Meter(gate, account_id, model, "server", price, chars, hold, started_at)


async def metered(
    request: web.Request,
    profile: Profile,
    lease: ChatLease,
    account_id: str | None,
    model: str,
    messages: object,
    requested_max_tokens: int | None,
) -> Meter | None:
    """`meter_chat`, after `admit_chat`: a chat refused here gives its lease back."""
    try:
        return await meter_chat(request, profile, account_id, model, messages, requested_max_tokens)
    except BaseException:
        await lease.release()
        raise


def capped(chat: ChatRequest, meter: Meter | None) -> ChatRequest:
    """The chat with the meter's max_tokens, when the budget set one."""
    if meter is None or meter.max_tokens is None or meter.max_tokens == chat.max_tokens:
        return chat
    return dataclasses.replace(chat, max_tokens=meter.max_tokens)


def hooks_of(meter: Meter | None) -> list[RunHook]:
    return [] if meter is None else [meter]


async def run_started(meter: Meter | None, starting: Awaitable[Run]) -> Run:
    """The run `starting` gives, its observer handed to the meter; a run that could not
    start (shutting down, the store away) gives its hold back."""
    try:
        run = await starting
    except BaseException:
        if meter is not None:
            await meter.release()
        raise
    if meter is not None:
        meter.observer = run.observer
    return run


def decoded(fragment: orjson.Fragment | None) -> object:
    """A field kept encoded (server/relay/request.py), decoded for a look at it."""
    return None if fragment is None else orjson.loads(orjson.dumps(fragment))


def requested_tokens(fields: Mapping[str, orjson.Fragment], *names: str) -> int | None:
    """The smallest answer cap an encoded request names under `names`, if any."""
    values = [decoded(fields.get(name)) for name in names]
    caps = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return min(caps) if caps else None


def with_tokens(
    fields: Mapping[str, orjson.Fragment], max_tokens: int, *names: str
) -> dict[str, orjson.Fragment]:
    """The fields with the meter's cap under each of `names` the request used (the first
    when it used none)."""
    used = [name for name in names if name in fields] or [names[0]]
    cap = orjson.Fragment(str(max_tokens).encode())
    return {**fields, **dict.fromkeys(used, cap)}


async def budget_gate(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after the database's: the budgets; at start the holds of dead processes
    of this host are released; at cleanup (after the runs') the last settlements finish."""
    settings = app[settings_key]
    budgets = Budgets(
        app[database_key],
        default_usd=settings.default_budget_usd,
        period=as_period(settings.budget_period),
        longest_chat_s=settings.max_chat_duration_s,
        clock=utc_now,
    )
    gate = app[budget_gate_key] = BudgetGate(budgets)
    try:
        await budgets.release_dead()
    except ChatError:
        log.warning("budget: holds of ended processes not released (database unavailable)")
    try:
        yield
    finally:
        if gate.settling:
            await asyncio.wait(list(gate.settling), timeout=SETTLE_WAIT_S)
        budgets.close()


def setup_budgets(app: web.Application) -> None:
    app.cleanup_ctx.append(budget_gate)
