"""Runs: a chat that outlives its connection. The run owns the upstream request and writes
its events to the chat store; transports only listen (server/store/events.py).

A run ends with exactly one final event (Done or Failed) whatever happens: upstream's
answer, an error, a cancel from anywhere, nobody listening for RESUME_WINDOW_S, or the
server shutting down (503). After it nothing more is written, so no listener sees an error
raised past its chat's end.

It stays whole past 300 lines: the run, its pump and `Runs` (start, find, cancel, shut down)
share one invariant, exactly one final event, that is easier to check in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Protocol

from aiohttp import web

from server.config import settings_key
from server.errors import ChatError, ChatTooLong, InternalError, ServerShuttingDown, code_of
from server.metrics import ChatObserver, metrics_key
from server.registry import Registry, registry_key
from server.relay.openrouter import UpstreamRequest, stream_chat
from server.relay.upstream_client import openrouter_key
from server.store.events import (
    ChatEvent,
    ChatLog,
    ChatStore,
    Chunks,
    Done,
    Failed,
    Final,
    LogEvent,
    chat_store_key,
)
from server.store.memory import MemoryStore
from server.store.redis_conn import redis_key
from server.store.redis_store import RedisStore

log = logging.getLogger(__name__)


class ChatLease(Protocol):
    """A running chat's slot under the limits (web/limits.py), held for the chat's whole
    life and given back once when it ends."""

    async def release(self) -> None: ...


class RunHook(Protocol):
    """Something that follows one run from the layers above (history, budgets), which the
    relay may not import: the transport passes it to `Runs.start`.

    `seen` gets each upstream read's events in the run's own task (the per-token path: keep
    it to an append). `ended` is awaited once, after the run left the registry and before
    its final event is logged, so a client that sees `done` finds what the hook wrote; it
    must return within a second or two (hand longer work, a retry, to a task of its own).
    """

    def seen(self, events: Sequence[LogEvent]) -> None: ...

    async def ended(self, final: Final) -> None: ...


ANONYMOUS = "-"
# After a chat's end its pump may spend up to a second handing upstream's connection back.
WIND_DOWN_S = 1.5


def chat_key(owner: str | None, chat_id: str) -> str:
    """Chats are kept per owner: two sessions may use one id, and neither sees the other's.
    A POST without a session is owned by whoever holds its random id."""
    return f"{owner or ANONYMOUS}:{chat_id}"


def too_long(max_s: float) -> ChatTooLong:
    return ChatTooLong(
        f"The chat was stopped after {max_s:g} seconds, the longest a chat may run here"
    )


def failed(error: ChatError) -> Failed:
    return Failed(error.status, error.message, error.retry_after, code_of(error))


class Run:
    """One chat's upstream request, pumped into its log by a task of its own."""

    def __init__(
        self,
        registry: Registry,
        observer: ChatObserver,
        lease: ChatLease,
        max_s: float,
        hooks: Sequence[RunHook] = (),
    ) -> None:
        self.registry = registry
        self.hooks = tuple(hooks)
        self.max_s = max_s
        self.observer = observer
        # The chat's MAX_CHATS_PER_CLIENT slot, held for its whole life, detached included.
        self.lease = lease
        self.task: asyncio.Task[None] | None = None
        self.stop_reason: ChatError | None = None

    def start(self, chat_log: ChatLog, batches: AsyncGenerator[list[ChatEvent], None]) -> None:
        self.registry.add_run(self)
        if self.observer.metrics is not None:
            self.observer.metrics.chats_running.inc()
        self.task = asyncio.create_task(self._pump(chat_log, batches))

    @property
    def running(self) -> bool:
        return self in self.registry.runs

    async def wound_down(self) -> None:
        """Wait until the pump let go of upstream's connection (about a second at most)."""
        if self.task is not None:
            await asyncio.wait([self.task])

    def cancel(self, reason: ChatError | None = None) -> None:
        """Stop the chat: as cancelled, or as failed with `reason` (its log line says so)."""
        # Once ended, the task only winds upstream's connection down for reuse: leave it be.
        if self.task is not None and self.running and self.stop_reason is None:
            self.stop_reason = reason
            self.task.cancel()

    def abandon(self) -> None:
        self.observer.detached = True
        self.cancel()

    def shut_down(self) -> None:
        if self.task is not None and self.running and self.stop_reason is None:
            self.stop_reason = ServerShuttingDown()
            self.task.cancel()

    async def _pump(
        self, chat_log: ChatLog, batches: AsyncGenerator[Sequence[LogEvent], None]
    ) -> None:
        final: Final | None = None
        try:
            # MAX_CHAT_DURATION_S: comment lines could keep a chat open forever.
            async with asyncio.timeout(self.max_s) as deadline, aclosing(batches):
                async for events in batches:
                    self._seen(events)
                    if type(events[-1]) is Done:
                        final = events[-1]
                        await self._end(chat_log, events)
                    else:
                        await chat_log.append(events)
                    del events  # not held through the wait for the next read
        except TimeoutError:
            if not deadline.expired():
                raise
            final = final or failed(too_long(self.max_s))
        except asyncio.CancelledError:
            if final is None:
                final = Done("cancelled", None)
                if self.stop_reason is not None:
                    final = failed(self.stop_reason)
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except ChatError as error:
            final = final or failed(error)
        except Exception:
            log.exception("chat failed id=%s", self.observer.chat_id)
            final = final or failed(InternalError())
        finally:
            await self._end(chat_log, [final or failed(InternalError())])

    def _seen(self, events: Sequence[LogEvent]) -> None:
        for hook in self.hooks:
            hook.seen(events)

    async def _ended(self, final: Final) -> None:
        for hook in self.hooks:
            try:
                await hook.ended(final)
            except Exception:  # one hook's bug must not keep the chat from ending
                log.exception("run hook failed id=%s", self.observer.chat_id)
            except asyncio.CancelledError:
                # Cut short (a shutdown that stopped waiting): the chat must still end, its
                # final event logged and its slot given back, so the cancel stops here.
                log.warning("run hook cut short id=%s", self.observer.chat_id)
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()

    async def _end(self, chat_log: ChatLog, events: Sequence[LogEvent]) -> None:
        """Write the final event (last of `events`) once, then the slot, metrics, log line."""
        if not self.running:
            return
        self.registry.remove_run(self)
        last = events[-1]
        if isinstance(last, Done | Failed):
            await self._ended(last)
        try:
            await chat_log.append(events)
        except ChatError as error:
            log.warning("chat end not stored id=%s: %s", self.observer.chat_id, error.message)
        await self.lease.release()
        observer, final = self.observer, events[-1]
        if observer.metrics is not None:
            observer.metrics.chats_running.dec()
        if isinstance(final, Failed):
            observer.ended(final.status, "error")
        elif isinstance(final, Done) and final.finish_reason == "cancelled":
            observer.ended(499, "cancelled")
        else:
            observer.ended(200, "done")


LogAs = Callable[[AsyncGenerator[list[Chunks | Done], None]], AsyncGenerator[list[ChatEvent], None]]


class Runs:
    """Starts, finds and stops the runs of one app."""

    def __init__(self, app: web.Application, store: ChatStore) -> None:
        self.app, self.store = app, store
        # Every pump, until upstream's connection is wound down after its chat ended.
        self.tasks: set[asyncio.Task[None]] = set()

    async def stop_all(self) -> None:
        """At cleanup: end what still runs (503) and wait for every pump to let go."""
        self.app[registry_key].shut_down_runs()
        if not self.tasks:
            return
        _, winding_down = await asyncio.wait(list(self.tasks), timeout=WIND_DOWN_S)
        for task in winding_down:
            task.cancel()
        if winding_down:
            await asyncio.wait(winding_down)

    async def start(
        self,
        key: str,
        chat_id: str,
        transport: str,
        request: UpstreamRequest,
        api_key: str,
        lease: ChatLease,
        hooks: Sequence[RunHook] = (),
        *,
        log_as: LogAs | None = None,
        max_chars: int | None = None,
    ) -> Run:
        """Start the chat, which holds `lease` until it ends. ChatIdInUse (409) when the
        key's chat still runs; 503 while shutting down or when the store is down.

        `log_as`: what the run logs from upstream's own chunks, instead of their text
        (a /v1/responses run, server/relay/responses.py). `max_chars`: where a metered
        chat is cut (openrouter.py `stream_chat`)."""
        registry = self.app[registry_key]
        observer = ChatObserver(chat_id, transport, request.model, self.app[metrics_key])
        max_s = self.app[settings_key].max_chat_duration_s
        run = Run(registry, observer, lease, max_s, hooks)
        try:
            if registry.draining:
                raise ServerShuttingDown()
            chat_log = await self.store.create(key, run)
        except BaseException:
            await lease.release()
            raise
        upstream = self.app[openrouter_key]
        if log_as is None:
            batches = stream_chat(request, api_key, upstream, observer, max_chars=max_chars)
        else:
            batches = log_as(
                stream_chat(
                    request, api_key, upstream, observer, relay_chunks=True, max_chars=max_chars
                )
            )
        run.start(chat_log, batches)
        assert run.task is not None
        self.tasks.add(run.task)
        run.task.add_done_callback(self.tasks.discard)
        return run

    async def find(self, owner: str | None, chat_id: str) -> str:
        """The key of the caller's chat with that id; ChatNotFound (404) for anyone else's
        (503 while the store may be getting its chats back)."""
        for key in {chat_key(owner, chat_id), chat_key(None, chat_id)}:
            if await self.store.exists(key):
                return key
        raise await self.store.not_found(chat_id)


runs_key = web.AppKey("runs", Runs)


async def chat_runs(app: web.Application) -> AsyncIterator[None]:
    """The app's chat store and runs; at cleanup what still runs ends, then the store."""
    settings, redis = app[settings_key], app[redis_key]
    # Redis when REDIS_URL is set, else this process's memory.
    store: ChatStore
    if redis is None:
        store = MemoryStore(settings.resume_window_s, settings.chat_retention_s)
    else:
        store = RedisStore(redis, settings.resume_window_s, settings.chat_retention_s)
    app[chat_store_key] = store
    runs = app[runs_key] = Runs(app, store)
    try:
        yield
    finally:
        await runs.stop_all()
        await store.close()


class _Deadline:
    """A stateless chat's entry in the registry: a shutdown reschedules its deadline."""

    def __init__(self, deadline: asyncio.Timeout) -> None:
        self.deadline = deadline

    def shut_down(self) -> None:
        self.deadline.reschedule(asyncio.get_running_loop().time())


@asynccontextmanager
async def running_chat(app: web.Application, observer: ChatObserver) -> AsyncIterator[None]:
    """Hold a chat that is not a run (/v1, stateless): counted, ended by the shutdown with
    ServerShuttingDown, and observed once when it leaves, by how it left."""
    registry = app[registry_key]
    if registry.draining:
        raise ServerShuttingDown()
    status, outcome = 499, "cancelled"
    gauge = app[metrics_key].chats_running
    gauge.inc()
    try:
        # A deadline at MAX_CHAT_DURATION_S, moved to now when the grace runs out; it cancels
        # only the chat inside, and asyncio turns that cancel into TimeoutError right here.
        max_s = app[settings_key].max_chat_duration_s
        async with asyncio.timeout(max_s) as deadline:
            entry = _Deadline(deadline)
            registry.add_run(entry)
            yield
        status, outcome = 200, "done"
    except TimeoutError:
        if not deadline.expired():
            status, outcome = 500, "error"
            raise
        status, outcome = (503 if registry.draining else 504), "error"
        if registry.draining:
            raise ServerShuttingDown() from None
        raise too_long(max_s) from None
    except ChatError as error:
        status, outcome = error.status, "error"
        raise
    except Exception:
        status, outcome = 500, "error"
        raise
    finally:
        registry.remove_run(entry)
        gauge.dec()
        observer.ended(status, outcome)
