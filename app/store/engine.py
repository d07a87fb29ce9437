"""Engine construction: SQLite tuned for several writer processes, or PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

SQLITE_BUSY_TIMEOUT_MS = 10_000
WRITER_QUEUE_TIMEOUT_SECONDS = SQLITE_BUSY_TIMEOUT_MS / 1000
FLOCK_POLL_SECONDS = 0.005


def default_sqlite_url(instance_path: str) -> str:
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / 'sms.db'}"


def build_engine(url: str) -> Engine:
    """`hide_parameters` keeps numbers and texts out of error messages and logs."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
    )


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        hide_parameters=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A writer takes the lock up front, so two processes never deadlock
        # upgrading read locks; readers stay concurrent under WAL.
        if connection.get_execution_options().get("readonly"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def open_database(database_url: str, instance_path: str) -> Engine:
    """The engine for `database_url` (SQLite in the instance folder by default).

    An embedded SQLite database is migrated here so the first run just works;
    PostgreSQL is migrated by the release phase (`flask migrate`) instead.
    """
    from app.store import migrate

    url = database_url or default_sqlite_url(instance_path)
    engine = build_engine(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        migrate.upgrade_with_lock(engine, f"{parsed.database}.migrate.lock")
    return engine


class _WriterQueue:
    """Orders one SQLite database's writers: a thread lock, then a file lock.

    SQLite has one writer at a time, and a writer that finds the database
    locked sleeps in SQLite's busy handler (up to 100 ms a try) even after the
    lock is free: under a burst of webhooks that made second-long tails. Here
    writers wait on locks that wake the next one as soon as the last commits,
    across the threads of a worker and, through `flock`, across workers. The
    locks only order writers; each commit is still its own durable transaction.

    The wait in the queue is bounded like SQLite's own busy wait: when the
    database stays locked (another process holds the write lock), each writer
    gives up after `timeout` instead of after its turn behind every writer
    queued before it, which grew by a whole busy timeout per queued writer.
    """

    def __init__(self, database: str) -> None:
        self._threads = threading.Lock()
        self._fd = os.open(f"{database}.write.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            raise _queue_timeout()
        try:
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _queue_timeout() from None
                    time.sleep(FLOCK_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _queue_timeout() -> OperationalError:
    return OperationalError(
        "waiting for the SQLite write lock", None, TimeoutError("database is locked")
    )


_writer_queues: dict[str, _WriterQueue] = {}
_writer_queues_lock = threading.Lock()


@contextmanager
def write_transaction(engine: Engine, timeout: float | None = None) -> Iterator[Connection]:
    """A committed-on-exit write transaction; SQLite writers queue in order.

    `timeout` bounds the whole wait for SQLite's write lock (the queue and
    SQLite's own busy wait together), for callers that must answer within a
    budget; by default each wait is bounded by the busy timeout. Not
    reentrant: never open one inside another.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        with engine.begin() as connection:
            yield connection
        return
    with _writer_queues_lock:
        queue = _writer_queues.get(database) or _writer_queues.setdefault(
            database, _WriterQueue(database)
        )
    if timeout is None:
        with queue.held(WRITER_QUEUE_TIMEOUT_SECONDS), engine.begin() as connection:
            yield connection
        return
    deadline = time.monotonic() + timeout
    with queue.held(timeout), engine.connect() as connection:
        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        dbapi = connection.connection.dbapi_connection
        dbapi.execute(f"PRAGMA busy_timeout={min(remaining_ms, SQLITE_BUSY_TIMEOUT_MS)}")
        try:
            with connection.begin():
                yield connection
        finally:
            # A broken connection is discarded by the pool anyway.
            with contextlib.suppress(sqlite3.Error):
                dbapi.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
