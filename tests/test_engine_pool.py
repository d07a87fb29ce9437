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


def test_one_dead_idle_connection_discards_every_older_one(engine, monkeypatch):
    """As `pool_pre_ping` does: a failed ping means the server went away (a restart,
    a failover), so the connections pooled before it are replaced too, and none of
    them fails a request later (the next one is reused busy, without a ping)."""
    monkeypatch.setattr(engine_module, "POOL_PING_IDLE_SECONDS", 0.0)
    with engine.connect() as one, engine.connect() as two:
        pooled = {
            one.execute(text("SELECT pg_backend_pid()")).scalar_one(),
            two.execute(text("SELECT pg_backend_pid()")).scalar_one(),
        }
    killer = build_engine(TEST_DATABASE_URL)
    try:
        with killer.connect() as connection:
            for pid in pooled:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        killer.dispose()
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(
        engine.dialect, "do_ping", lambda dbapi: pings.append(1) or real_ping(dbapi)
    )

    with engine.connect() as one, engine.connect() as two:
        now = {
            one.execute(text("SELECT pg_backend_pid()")).scalar_one(),
            two.execute(text("SELECT pg_backend_pid()")).scalar_one(),
        }

    assert now.isdisjoint(pooled)
    assert len(pings) == 1
