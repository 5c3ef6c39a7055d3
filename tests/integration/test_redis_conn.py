"""The app's Redis client: plain and TLS (self-signed, as platforms serve it), down at start."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from server.config import ConfigError, Settings
from server.errors import ChatStoreUnavailable
from server.store.redis_conn import make_redis, redis_key, store_errors
from tests.conftest import SERVER_KEY, Client, MakeClient, chat_body
from tests.fake_openrouter import FakeOpenRouter
from tests.redis_server import RedisServer
from tests.server_process import start_server, stop_server

MakeRedis = Callable[..., RedisServer]


def app_redis(client: Client) -> Redis:
    assert client.app is not None
    redis: Redis | None = client.app[redis_key]
    assert redis is not None
    return redis


async def round_trip(redis: Redis) -> None:
    await redis.set("chatrelay:test", b"value", ex=60)
    assert await redis.get("chatrelay:test") == b"value"


async def test_no_redis_url_means_no_client(client: Client) -> None:
    assert client.app is not None and client.app[redis_key] is None


async def test_the_app_talks_to_a_plain_redis(make_client: MakeClient, redis_url: str) -> None:
    await round_trip(app_redis(await make_client(redis_url=redis_url)))


async def test_rediss_with_a_self_signed_certificate_and_ssl_cert_reqs_none(
    make_client: MakeClient, make_redis_server: MakeRedis
) -> None:
    server = make_redis_server(tls=True)
    assert server.url.startswith("rediss://") and "ssl_cert_reqs=none" in server.url
    await round_trip(app_redis(await make_client(redis_url=server.url)))


async def test_rediss_checks_the_certificate_unless_told_not_to(
    make_client: MakeClient, make_redis_server: MakeRedis
) -> None:
    server = make_redis_server(tls=True)
    checked = f"rediss://127.0.0.1:{server.port}/0"
    redis = app_redis(await make_client(redis_url=checked))
    with pytest.raises(ChatStoreUnavailable), store_errors():
        await redis.ping()
    # A managed REDIS_URL cannot carry the parameter: REDIS_SSL_CERT_REQS says it instead.
    loose = await make_client(redis_url=checked, redis_ssl_cert_reqs="none")
    await round_trip(app_redis(loose))
    # And a certificate the client is given is checked, host name included.
    assert server.tls is not None
    trusting = f"{checked}?ssl_cert_reqs=required&ssl_ca_certs={server.tls.cert}"
    await round_trip(app_redis(await make_client(redis_url=trusting)))


async def test_redis_down_at_start_breaks_nothing_and_comes_back(
    make_client: MakeClient, make_redis_server: MakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server()
    server.stop()
    with caplog.at_level(logging.WARNING, logger="server.store.redis_conn"):
        await make_client(redis_url=f"redis://:hunter2-secret@127.0.0.1:{server.port}/0")
        client = await make_client(redis_url=server.url)
    assert "does not answer" in caplog.text and f"127.0.0.1:{server.port}" in caplog.text
    assert "hunter2" not in caplog.text  # the URL's password is never logged
    response = await client.get("/healthz")
    assert response.status == 200
    redis = app_redis(client)
    with pytest.raises(ChatStoreUnavailable), store_errors():
        await redis.ping()
    server.start()
    await round_trip(redis)
    # Gone again mid-run (its connections drop), then back: the same client recovers.
    server.stop()
    with pytest.raises(ChatStoreUnavailable), store_errors():
        await redis.ping()
    server.start()
    await round_trip(redis)


def test_redis_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"REDIS_URL": "rediss://:pw@redis.example:6380"})
    assert settings.redis_url == "rediss://:pw@redis.example:6380"
    assert settings.redis_ssl_cert_reqs == "required"
    assert Settings.from_env({}).redis_url is None
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env({"REDIS_URL": "http://redis.example"})
    with pytest.raises(ConfigError, match="REDIS_SSL_CERT_REQS"):
        Settings.from_env({"REDIS_SSL_CERT_REQS": "maybe"})


@pytest.mark.subprocess
async def test_python_m_server_starts_with_redis_down_and_refuses_chats_with_503(
    make_redis_server: MakeRedis, fake_openrouter: FakeOpenRouter, unused_tcp_port: int
) -> None:
    server = make_redis_server()
    server.stop()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "OPENROUTER_API_KEY": SERVER_KEY,
        "OPENROUTER_BASE_URL": fake_openrouter.url,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("ACCESS_TOKEN", None)
    process, url = await start_server(env, unused_tcp_port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/api/chat/openrouter", json=chat_body()) as response:
                assert response.status == 503
                assert await response.json() == {"message": "Chat store unavailable"}
            server.start()
            async with session.post(f"{url}/api/chat/openrouter", json=chat_body()) as response:
                assert response.status == 200
                assert await response.text() == "Hello"
    finally:
        assert await stop_server(process) == 0


async def test_a_connection_closed_under_a_write_is_a_connection_error_and_reconnects(
    redis_url: str,
) -> None:
    """redis-py 8.1 lets a write whose connection another task closed meanwhile escape as a
    raw AttributeError (seen in CI: a listener's ZREM), which no retry or 503 catches."""
    redis = make_redis(Settings(redis_url=redis_url))
    assert redis is not None
    connection = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        sending = asyncio.ensure_future(connection.send_command("PING"))
        await asyncio.sleep(0)  # the write is under way in a task of its own (socket_timeout)
        await connection.disconnect(nowait=True)
        with pytest.raises(RedisConnectionError):
            await sending
        # The same connection serves the next command, as a retry would use it.
        await connection.send_command("PING")
        assert await connection.read_response() == b"PONG"
    finally:
        await redis.connection_pool.release(connection)
        await redis.aclose()
