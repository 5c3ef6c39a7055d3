"""Who the users are and what they keep: the database, accounts, history, sync and budgets.

May import: the top-level base modules (`config`, `errors`, `telemetry`, `registry`),
`store` and `relay`. Knows no transport (`web`): routes live in `web` and call in here.
"""
