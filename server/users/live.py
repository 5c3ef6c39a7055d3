"""Live sync: after a write commits, every WebSocket of the account, on every process, hears
the account's new version (SPEC "History and sync": `{"type": "sync", "version": N}`).

The sockets of this process subscribe here by account; a change is told to them at once and,
with REDIS_URL, published on one channel that every other process listens to. The frame only
pokes: a device then pulls `GET /api/sync`, so a poke lost to a Redis outage costs a delay
until the next change or reconnect, never a change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

from redis.asyncio import Redis

from server.store.redis_conn import REDIS_DOWN, outage_log, stop_tasks

log = logging.getLogger(__name__)

SYNC_CHANNEL = "chatrelay:sync"
RESUBSCRIBE_S = 0.5

# What a subscriber is told: the account's newest version.
Listener = Callable[[int], None]


class SyncBus:
    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis
        # Messages this process published come back on its own subscription: skipped.
        self.process_id = secrets.token_hex(8)
        self.listeners: dict[str, set[Listener]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.subscribed = asyncio.Event()
        if redis is None:
            self.subscribed.set()

    def start(self) -> None:
        if self.redis is not None:
            self.tasks.add(asyncio.create_task(self._hear(self.redis)))

    def subscribe(self, account_id: str, listener: Listener) -> Callable[[], None]:
        """Hear the account's versions; the result unsubscribes."""
        self.listeners.setdefault(account_id, set()).add(listener)

        def unsubscribe() -> None:
            listeners = self.listeners.get(account_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self.listeners[account_id]

        return unsubscribe

    def changed(self, account_id: str, version: int) -> None:
        """A write of the account committed: tell this process's sockets, then the others."""
        self._tell(account_id, version)
        if self.redis is not None and not self.closed:
            task = asyncio.create_task(self._publish(self.redis, account_id, version))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _tell(self, account_id: str, version: int) -> None:
        for listener in list(self.listeners.get(account_id, ())):
            try:
                listener(version)
            except Exception:  # one socket's bug must not keep the others from hearing
                log.exception("sync listener failed")

    async def _publish(self, redis: Redis, account_id: str, version: int) -> None:
        try:
            await redis.publish(SYNC_CHANNEL, f"{self.process_id} {version} {account_id}")
        except REDIS_DOWN as error:
            outage_log.failed(error)  # one warning per outage's few seconds, not per write
        else:
            outage_log.answered()

    async def _hear(self, redis: Redis) -> None:
        """Tell this process's sockets what other processes wrote; resubscribe after outages."""
        while not self.closed:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(SYNC_CHANNEL)
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        try:
                            sender, version, account_id = message["data"].decode().split(" ", 2)
                            heard = int(version)
                        except (ValueError, UnicodeDecodeError):
                            continue  # not ours: the channel is open to whatever shares Redis
                        if sender != self.process_id:
                            self._tell(account_id, heard)
            except REDIS_DOWN:
                self.subscribed.clear()
                await asyncio.sleep(RESUBSCRIBE_S)

    async def close(self) -> None:
        self.closed = True
        await stop_tasks(self.tasks)
