"""The relay: a chat from its request to its events. The request checked, upstream's wire
format decoded, the one upstream client (`stream_chat`), the runs that own a chat's upstream
request and log its events, and the `chat.completion` built from a stream.

May import: the top-level base modules (`config`, `errors`, `telemetry`, `registry`) and
`store`. Knows no transport (`web`) and no database (`users`).
"""
