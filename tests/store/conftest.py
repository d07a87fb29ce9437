"""A real, migrated database for calling the store functions directly.

SQLite by default (one file, migrated once per session); the session's
migrated PostgreSQL database when TEST_DATABASE_URL is set. Each test runs in
one transaction that starts by emptying every table and is rolled back at the
end: a test sees only its own rows and leaves nothing behind, without the cost
of a fresh database or a TRUNCATE per test.
"""

from __future__ import annotations

import pytest

from app.store.engine import build_engine
from app.store.migrate import upgrade
from app.store.models import Base


@pytest.fixture(scope="session")
def store_engine(tmp_path_factory, postgres_ready):
    if postgres_ready is not None:
        yield postgres_ready
        return
    engine = build_engine(f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(store_engine):
    """A connection in a transaction, emptied at its start and rolled back at its end."""
    with store_engine.connect() as connection:
        transaction = connection.begin()
        try:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
            yield connection
        finally:
            transaction.rollback()
