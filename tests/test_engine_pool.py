"""PostgreSQL's pool: a connection idle a while is tested before use, a busy one is not."""

import pytest
from sqlalchemy import text

from app.store import engine as engine_module
from app.store.engine import build_engine
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL")


@pytest.fixture
def engine(postgres_ready):
    built = build_engine(TEST_DATABASE_URL)
    yield built
    built.dispose()


def backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_handed_back_a_moment_ago_is_reused_without_a_ping(engine, monkeypatch):
    pings = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi: pings.append(dbapi) or True)
    first = backend_pid(engine)
    assert backend_pid(engine) == first
    assert pings == []


def test_a_connection_killed_while_idle_is_replaced_before_use(engine, monkeypatch):
    monkeypatch.setattr(engine_module, "POOL_PING_IDLE_SECONDS", 0.0)
    victim = backend_pid(engine)
    killer = build_engine(TEST_DATABASE_URL)
    try:
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
    finally:
        killer.dispose()
    assert backend_pid(engine) != victim
