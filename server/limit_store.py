"""Where limits are counted: the interface, and the one-process store kept in memory.

Two kinds of count, both all-or-nothing over several keys (a chat counts against its
address *and* its user key at once): a rate (token bucket, `per_minute` at once, refilled
evenly over a minute) and slots (things held at once, each a `Lease` given back when done).
`server/redis_limits.py` implements the same interface across processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

# Past this many tracked keys, idle buckets are dropped: rotating addresses cost no memory.
MAX_TRACKED_KEYS = 10_000


class Lease(Protocol):
    """Slots held under some keys; `release()` gives them back (again: nothing happens)."""

    async def release(self) -> None: ...


class LimitStore(Protocol):
    async def take_rate(self, keys: Sequence[str], per_minute: int) -> int | None:
        """Spend one from each key's bucket: None when every key had one, else the seconds
        until all of them have (and nothing is spent)."""
        ...

    async def take_slots(self, keys: Sequence[str], cap: int) -> Lease | None:
        """Hold one slot under each key while under `cap` for all of them, else None."""
        ...

    async def aclose(self) -> None:
        """Give back every lease still held (a process that ends holds nothing)."""
        ...


def seconds_until_one(tokens: float, per_minute: int) -> int:
    return max(1, math.ceil((1 - tokens) * 60 / per_minute))


class MemoryLease:
    def __init__(self, store: MemoryLimitStore, keys: Sequence[str]) -> None:
        self.store, self.keys = store, tuple(keys)
        self.held = True

    async def release(self) -> None:
        if self.held:
            self.held = False
            self.store.give_back(self.keys)


class MemoryLimitStore:
    """Counts of this process only: the default without REDIS_URL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.slots: dict[str, int] = {}

    async def take_rate(self, keys: Sequence[str], per_minute: int) -> int | None:
        now = self.clock()
        tokens = [self._tokens(key, now, per_minute) for key in keys]
        short = [t for t in tokens if t < 1]
        if short:
            return seconds_until_one(min(short), per_minute)
        if len(self.buckets) + len(keys) > MAX_TRACKED_KEYS:
            self._forget_idle(now, per_minute)
        for key, left in zip(keys, tokens, strict=True):
            self.buckets[key] = (left - 1, now)
        return None

    def _tokens(self, key: str, now: float, per_minute: int) -> float:
        tokens, at = self.buckets.get(key, (float(per_minute), now))
        return min(float(per_minute), tokens + (now - at) * per_minute / 60)

    def _forget_idle(self, now: float, per_minute: int) -> None:
        for key in [k for k in self.buckets if self._tokens(k, now, per_minute) >= per_minute]:
            del self.buckets[key]
        if len(self.buckets) >= MAX_TRACKED_KEYS:
            # Forgetting the first-seen half only makes the limit more lenient for them.
            for key in list(self.buckets)[: len(self.buckets) // 2]:
                del self.buckets[key]

    async def take_slots(self, keys: Sequence[str], cap: int) -> Lease | None:
        if any(self.slots.get(key, 0) >= cap for key in keys):
            return None
        for key in keys:
            self.slots[key] = self.slots.get(key, 0) + 1
        return MemoryLease(self, keys)

    def give_back(self, keys: Sequence[str]) -> None:
        for key in keys:
            left = self.slots.get(key, 1) - 1
            if left > 0:
                self.slots[key] = left
            else:
                self.slots.pop(key, None)

    async def aclose(self) -> None:
        self.slots.clear()
