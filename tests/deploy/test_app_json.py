"""app.json, the one-click deploy: what it offers is what the server reads, and it starts."""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

import orjson

from server.config import Settings, startup_problem
from tests.server_process import ROOT

# Read by gunicorn.conf.py, not by Settings.
NOT_SETTINGS = {"WEB_CONCURRENCY"}


def app_json() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((ROOT / "app.json").read_bytes())
    return data


def test_every_variable_offered_is_one_the_server_reads_and_its_value_parses() -> None:
    env: dict[str, dict[str, Any]] = app_json()["env"]
    read = {f.metadata["env"] for f in dataclasses.fields(Settings) if "env" in f.metadata}
    assert set(env) - NOT_SETTINGS <= read
    values = {name: spec["value"] for name, spec in env.items() if "value" in spec}
    Settings.from_env({k: v for k, v in values.items() if k not in NOT_SETTINGS})


def test_the_generated_session_secret_starts_several_workers() -> None:
    spec = app_json()["env"]["SESSION_SECRET"]
    assert spec["generator"] == "secret" and spec["required"] is True
    generated = secrets.token_hex(32)  # the platform's generator: 64 hex characters
    assert re.fullmatch(r"[0-9a-f]{64}", generated)
    assert startup_problem({"SESSION_SECRET": generated}, "0.0.0.0", 2) is None


def test_the_redis_add_on_is_offered_and_its_certificate_accepted() -> None:
    data = app_json()
    assert any(addon["plan"].startswith("heroku-redis") for addon in data["addons"])
    # The add-on sets a rediss:// REDIS_URL of its own, with a self-signed certificate.
    values = {"REDIS_URL": "rediss://:pw@ec2.example:12345"}
    values["REDIS_SSL_CERT_REQS"] = data["env"]["REDIS_SSL_CERT_REQS"]["value"]
    assert Settings.from_env(values).redis_ssl_cert_reqs == "none"


def test_the_values_offered_are_the_servers_defaults_unless_the_platform_needs_others() -> None:
    # On the platform: behind its router, and its Redis add-on's self-signed certificate.
    platform = {"BEHIND_PROXY", "REDIS_SSL_CERT_REQS"}
    env: dict[str, dict[str, Any]] = app_json()["env"]
    defaults = Settings()
    for name, spec in env.items():
        if "value" not in spec or name in platform | NOT_SETTINGS:
            continue
        offered = Settings.from_env({name: spec["value"]})
        changed = [
            f.name
            for f in dataclasses.fields(Settings)
            if getattr(offered, f.name) != getattr(defaults, f.name)
        ]
        assert not changed, f"app.json offers {name}={spec['value']}, not the default"


def test_the_postgres_add_on_is_offered_and_the_release_phase_migrates() -> None:
    data = app_json()
    assert any(addon["plan"].startswith("heroku-postgresql") for addon in data["addons"])
    # The add-on's DATABASE_URL is postgres://, which the server takes as postgresql://.
    url = Settings.from_env({"DATABASE_URL": "postgres://u:p@ec2.example:5432/d1"})
    assert url.database_url_for_engine().startswith("postgresql+asyncpg://")
    procfile = (ROOT / "Procfile").read_text().splitlines()
    # The interpreter is the clone's .venv when there is one, else python on PATH.
    assert any(
        re.fullmatch(r"release: exec .*python\S* -m server migrate", line) for line in procfile
    )
