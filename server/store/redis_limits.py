"""The limits counted in Redis (RedisLimitStore), so that every process shares them.

Each limit is one atomic Lua script over its keys, timed by Redis' own clock, and every key
expires: a bucket once it would be full again, a slot unless its holder keeps renewing it.
A process that crashes stops renewing, so its slots come back within `lease_ttl_s`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from server.store.redis_conn import REDIS_DOWN, outage_log, stop_tasks, store_errors

# The limits in Redis (server/web/limits.py says what each counts).
LIMIT_KEY_PREFIX = "chatrelay:limit:"
LEASE_TTL_S = 30.0

# KEYS: buckets; ARGV: per_minute, spend (0: only say whether there is one, sign-in's
# check before it counts a failure). Tokens are kept in thousandths, so they stay integers.
TAKE_RATE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local full = tonumber(ARGV[1]) * 1000
local per_ms = full / 60000
local left = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(saved[1]) or full
  local at = tonumber(saved[2]) or now
  tokens = math.min(full, tokens + math.max(0, now - at) * per_ms)
  left[i] = tokens
  if tokens < 1000 then wait = math.max(wait, math.ceil((1000 - tokens) / per_ms / 1000)) end
end
if wait > 0 or ARGV[2] == '0' then return wait end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'tokens', math.floor(left[i] - 1000), 'at', now)
  redis.call('PEXPIRE', key, 60000)
end
return 0
"""

# KEYS: slot sets (member -> expiry in ms); ARGV: member, cap, ttl in ms.
TAKE_SLOTS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2]) then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""

# KEYS: slot sets; ARGV: member, ttl in ms. Also puts back a slot that expired while Redis
# was away: the chat or socket is still there, so it still counts.
RENEW_SLOTS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2]))
end
return 1
"""

# KEYS: slot sets; ARGV: member. One round trip for the two keys of a chat.
RELEASE_SLOTS = """
for _, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[1]) end
return 1
"""


class RedisLease:
    def __init__(self, store: RedisLimitStore, keys: Sequence[str]) -> None:
        self.store, self.keys = store, tuple(keys)
        self.member = secrets.token_hex(12)

    async def release(self) -> None:
        if self.store.leases.pop(self.member, None) is None:
            return
        try:
            await self.store.release_slots(keys=list(self.keys), args=[self.member])
        except REDIS_DOWN as error:
            # Not renewed any more, the slot expires by itself within the lease's TTL.
            outage_log.failed(error)


class RedisLimitStore:
    def __init__(self, redis: Redis, lease_ttl_s: float = LEASE_TTL_S) -> None:
        self.redis = redis
        self.ttl_ms = int(lease_ttl_s * 1000)
        self.leases: dict[str, RedisLease] = {}
        self._take_rate = redis.register_script(TAKE_RATE)
        self._take_slots = redis.register_script(TAKE_SLOTS)
        self._renew_slots = redis.register_script(RENEW_SLOTS)
        self.release_slots = redis.register_script(RELEASE_SLOTS)
        self._renewer = asyncio.create_task(self._renew_forever(lease_ttl_s / 3))

    async def take_rate(
        self, keys: Sequence[str], per_minute: int, *, spend: bool = True
    ) -> int | None:
        with store_errors():
            wait = await self._take_rate(
                keys=[LIMIT_KEY_PREFIX + k for k in keys], args=[per_minute, int(spend)]
            )
        return int(wait) or None

    async def take_slots(self, keys: Sequence[str], cap: int) -> RedisLease | None:
        lease = RedisLease(self, [LIMIT_KEY_PREFIX + k for k in keys])
        with store_errors():
            taken = await self._take_slots(
                keys=list(lease.keys), args=[lease.member, cap, self.ttl_ms]
            )
        if not taken:
            return None
        self.leases[lease.member] = lease
        return lease

    async def _renew_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.renew()
            except REDIS_DOWN as error:
                outage_log.failed(error)

    async def renew(self) -> None:
        leases = list(self.leases.values())
        if not leases:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                args: list[Any] = [lease.member, self.ttl_ms]
                await self._renew_slots(keys=list(lease.keys), args=args, client=pipe)
            await pipe.execute()

    async def aclose(self) -> None:
        await stop_tasks([self._renewer])
        for lease in list(self.leases.values()):
            await lease.release()
