"""A chat's event log: the events and the store's one interface (`events`), kept in this
process's memory (`memory`) or in Redis for every process (`redis_store`, `redis_log`), and
the one Redis connection with what Redis being down means (`redis_conn`), and the limits'
counts in Redis (`redis_limits`).

May import: the top-level base modules (`config`, `errors`, `telemetry`) only. Knows no
upstream (`relay`), no transport (`web`) and no database (`users`).
"""
