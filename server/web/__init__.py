"""The transports and what stands at the door: the HTTP chat routes, the WebSocket, the
OpenAI-compatible `/v1`, request I/O, access (tokens, origins, proxies), limits and the
profile with its key check.

May import every package below it: the base modules, `store`, `relay` and `users`.
Only the top (`app`, `runner`, `__main__`) imports it.
"""
