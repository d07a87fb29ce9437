"""Fixtures: an app with its own settings and database per test, a client,
a CLI runner, a signed-webhook helper, and `responses` for Vonage's HTTP.

The suite runs on SQLite by default; set TEST_DATABASE_URL to a PostgreSQL URL
(and TEST_REDIS_URL for the limit tests) to run the same tests there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from app import create_app, vonage_client
from app.config import Settings, load_settings
from app.store.models import Base
from tests.support import (
    API_KEY,
    APPLICATION_ID,
    OTHER_API_KEY,
    SIGNATURE_SECRET,
    VONAGE_NUMBER,
    auth_headers,
    signed_headers,
)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


# What a developer's shell or `.env` may set and the app would read.
SETTING_NAMES = frozenset(f.name.upper() for f in dataclasses.fields(Settings))
CALLER_PREFIXES = ("VONAGE_", "SIM_")


@pytest.fixture(autouse=True)
def isolated_from_the_caller(monkeypatch):
    """No test sees the caller's settings: neither its environment nor its `.env`.

    Every setting variable (and any VONAGE_*/SIM_*) is removed from os.environ, and
    `load_settings` cannot load a `.env` (python-dotenv finds the repository's own,
    which the README walkthrough writes). Tests pass settings explicitly instead.
    """
    for name in list(os.environ):
        if name in SETTING_NAMES or name.startswith(CALLER_PREFIXES) or name == "FLASK_APP":
            monkeypatch.delenv(name)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setattr("app.config.load_dotenv", lambda *args, **kwargs: False)


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="session")
def private_key_parsed(private_key_pem):
    return vonage_client.load_private_key(private_key_pem)


@pytest.fixture(autouse=True)
def session_key_parsed_once(monkeypatch, private_key_pem, private_key_parsed):
    """Every app's Vonage client gets the session's key already parsed.

    Parsing checks the RSA key, which took ~0.17 s per app (most tests build one);
    the key is immutable, so one parse serves all. Any other PEM is parsed as usual.
    """
    parse = vonage_client.load_private_key
    monkeypatch.setattr(
        vonage_client,
        "load_private_key",
        lambda pem: private_key_parsed if pem.strip() == private_key_pem.strip() else parse(pem),
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite database migrated to head once per session, copied for each test.

    The app migrates an embedded database on first connect (~0.15 s); a copy of
    one already at head skips that, and the first-connect check still runs.
    """
    from app.store.engine import open_database

    path = tmp_path_factory.mktemp("template") / "sms.db"
    engine = open_database(f"sqlite:///{path}", str(path.parent))
    with engine.connect():
        pass
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_ready():
    """Migrate the test PostgreSQL database once per session."""
    if not TEST_DATABASE_URL:
        yield None
        return
    from app.store.engine import build_engine
    from app.store.migrate import upgrade

    engine = build_engine(TEST_DATABASE_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    yield engine
    engine.dispose()


def _empty_postgres(engine) -> None:
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


@pytest.fixture
def database_url(tmp_path, postgres_ready, request) -> str:
    if postgres_ready is not None:
        _empty_postgres(postgres_ready)
        return TEST_DATABASE_URL
    shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "sms.db")
    return f"sqlite:///{tmp_path / 'sms.db'}"


@pytest.fixture
def make_settings(database_url, private_key_pem) -> Callable:
    def build(**overrides):
        values = {
            "DATABASE_URL": database_url,
            "API_KEYS": f"{API_KEY},{OTHER_API_KEY}",
            "VONAGE_APPLICATION_ID": APPLICATION_ID,
            "VONAGE_PRIVATE_KEY": private_key_pem,
            "VONAGE_NUMBER": "+" + VONAGE_NUMBER,
            "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
            "VONAGE_TIMEOUT_SECONDS": "2",
            "SEND_SMS_RATE_LIMIT": "1000/second",
            "VONAGE_MAX_SENDS_PER_SECOND": "1000",
            "LOG_LEVEL": "INFO",
            "TRUSTED_PROXIES": "0",
        }
        values.update({key: str(value) for key, value in overrides.items()})
        return load_settings(values, environ={})

    return build


@pytest.fixture
def make_app(make_settings):
    """Build an app with extra settings; its waits (Vonage retries, the throttle,
    `send-sms --wait`) are recorded in `app.config["SLEEPS"]`, not slept, and
    handed to `app.config["ON_SLEEP"]` when a test sets it."""
    built = []

    def build(**overrides):
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if app.config.get("ON_SLEEP"):
                app.config["ON_SLEEP"](seconds)

        app = create_app(make_settings(**overrides), sleep=sleep)
        app.config["TESTING"] = True
        app.config["SLEEPS"] = sleeps
        built.append(app)
        return app

    yield build
    for app in built:
        app.extensions["db"].dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def vonage_api():
    """Vonage's HTTP, answered by `responses`; any unexpected call fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def send(client):
    def post(payload=None, *, key=API_KEY, headers=None, **kwargs):
        return client.post(
            "/send-sms", json=payload, headers={**auth_headers(key), **(headers or {})}, **kwargs
        )

    return post


@pytest.fixture
def signed_webhook(client):
    """POST a body to a webhook route, signed as Vonage signs it (override pieces to tamper)."""

    def post(
        path: str, payload, *, secret: str = SIGNATURE_SECRET, body: bytes | None = None, **claims
    ):
        raw = body if body is not None else json.dumps(payload).encode()
        return client.post(path, data=raw, headers=signed_headers(raw, secret, **claims))

    return post


LIMIT_STORAGES = ["memory://"] + ([TEST_REDIS_URL] if TEST_REDIS_URL else [])


@pytest.fixture(params=LIMIT_STORAGES, ids=lambda uri: uri.split(":")[0])
def limit_storage_uri(request) -> str:
    """Each rate-limit storage available: memory always, Redis when TEST_REDIS_URL is set."""
    if request.param.startswith("redis"):
        import redis

        redis.Redis.from_url(request.param).flushdb()
    return request.param
