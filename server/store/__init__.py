"""A chat's event log: the events and the store's one interface (`events`), kept in this
process's memory (`memory`, `memory_log`) or in Redis for every process (`redis_store`; its
Streams: `redis_entries`, written by `redis_log`, followed by `redis_follow`), and the one
Redis connection with what Redis being down means (`redis_conn`), and the limits'
counts in Redis (`redis_limits`).

May import: the top-level base modules (`config`, `errors`, `telemetry`) only. Knows no
upstream (`relay`), no transport (`web`) and no database (`users`).
"""
