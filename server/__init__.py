"""chatrelay: relay OpenRouter's streaming chat completions over HTTP and WebSocket.

The packages are layers; each imports only those listed before it:

- base modules here: `config`, `errors`, `telemetry`, `metrics`, `registry` (none imports
  a package);
- `store/`: a chat's event log, in memory or in Redis;
- `relay/`: a chat from request to events: the upstream client and the runs;
- `users/`: the database: accounts, history, sync and budgets;
- `web/`: the transports and the door: HTTP, WebSocket, /v1, access, limits, profile;
- the top: `app` (the contents page), `runner` (process life), `__main__` and
  `gunicorn_conf` (the Procfile's gunicorn settings).

tests/unit/test_layers.py reads every import and fails when one reaches up.
"""
