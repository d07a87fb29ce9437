"""A SQLite database whose folder is missing or not writable is unavailable: every
route that writes answers 503 problem+json (Vonage sends a webhook again), never 500."""

import json
import os

import pytest
from sqlalchemy import text

from app.store.engine import build_engine
from app.store.migrate import upgrade
from tests.integration.conftest import fresh_postgres_database
from tests.support import TO, accepted, auth_headers, inbound_payload, signed_headers


@pytest.fixture
def unavailable(make_app, tmp_path):
    return make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'gone' / 'sms.db'}")


def _webhook(client):
    body = json.dumps(inbound_payload("Hello")).encode()
    return client.post("/webhooks/inbound", data=body, headers=signed_headers(body))


def _subscribe(client):
    return client.post(
        "/subscriptions",
        json={"url": "https://example.com/hook", "events": ["*"]},
        headers=auth_headers(),
    )


@pytest.mark.parametrize("call", [_webhook, _subscribe], ids=["webhook", "subscription"])
def test_writes_answer_503_when_the_sqlite_folder_is_missing(unavailable, tmp_path, call):
    response = call(unavailable.test_client())

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert not (tmp_path / "gone").exists()


def test_a_send_answers_503_and_calls_no_one(unavailable, tmp_path, vonage_api):
    accepted(vonage_api)
    response = unavailable.test_client().post(
        "/send-sms", json={"to": TO, "text": "Hello"}, headers=auth_headers()
    )

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert len(vonage_api.calls) == 0
    assert not (tmp_path / "gone").exists()


POSTGRES_SERVER = os.environ.get("TEST_POSTGRES_URL", "")


@pytest.fixture
def unmigrated(make_app):
    """PostgreSQL before the release phase ran `migrate`: the database has no tables."""
    if not POSTGRES_SERVER:
        pytest.skip("needs TEST_POSTGRES_URL (see .ci/run)")
    with fresh_postgres_database(POSTGRES_SERVER, "sms_unmigrated") as url:
        app = make_app(DATABASE_URL=url)
        yield app
        app.extensions["db"].dispose()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/send-sms", {"to": TO, "text": "Hello"}),
        ("GET", "/messages", None),
        ("GET", "/messages/no-such-id", None),
        ("GET", "/subscriptions", None),
        ("GET", "/events", None),
    ],
)
def test_an_unmigrated_postgresql_is_503_not_500(unmigrated, vonage_api, method, path, body):
    """As SQLite's "no such table" already is: retry later, and Vonage is never called."""
    accepted(vonage_api)

    response = unmigrated.test_client().open(path, method=method, json=body, headers=auth_headers())

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"]
    assert len(vonage_api.calls) == 0


def test_an_unmigrated_postgresql_webhook_is_503(unmigrated):
    response = _webhook(unmigrated.test_client())

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"


@pytest.fixture
def read_only(make_app):
    """A migrated PostgreSQL that takes no writes: a standby, or a primary demoted by a
    failover, that the connection string still points at."""
    if not POSTGRES_SERVER:
        pytest.skip("needs TEST_POSTGRES_URL (see .ci/run)")
    with fresh_postgres_database(POSTGRES_SERVER, "sms_read_only") as url:
        engine = build_engine(url)
        upgrade(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(
                text("ALTER DATABASE sms_read_only SET default_transaction_read_only = on")
            )
        engine.dispose()
        app = make_app(DATABASE_URL=url)
        yield app
        app.extensions["db"].dispose()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/send-sms", {"to": TO, "text": "Hello"}),
        ("POST", "/subscriptions", {"url": "https://example.com/hook", "events": ["*"]}),
        ("DELETE", f"/numbers/{TO}", None),
    ],
)
def test_a_read_only_postgresql_is_503_for_writes(read_only, vonage_api, method, path, body):
    accepted(vonage_api)

    response = read_only.test_client().open(path, method=method, json=body, headers=auth_headers())

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert len(vonage_api.calls) == 0


def test_a_read_only_postgresql_webhook_is_503_and_reads_still_answer(read_only):
    client = read_only.test_client()

    assert _webhook(client).status_code == 503
    assert client.get("/messages", headers=auth_headers()).status_code == 200
