"""Engine construction: SQLite tuned for several writer processes, or PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.store import driver

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_MMAP_BYTES = 1 << 30
WRITER_QUEUE_TIMEOUT_SECONDS = SQLITE_BUSY_TIMEOUT_MS / 1000
# A worker waiting for another worker's batch polls the file lock (flock has no
# timeout). A batch holds it for a millisecond or two, so the poll is short:
# at 5 ms a third of the CPU sat idle under a webhook burst; backing off from
# 0.2 ms to 2 ms lost a fifth of the throughput again (the benchmark, README).
FLOCK_POLL_SECONDS = 0.0002


#: What "the database is unavailable" looks like: the server is down or refuses,
#: the connection broke, the SQLite lock was not had in time, or no pooled
#: connection came free in time (PostgreSQL, more threads than connections).
STORAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


POOL_TIMEOUT_SECONDS = 5.0


def default_sqlite_url(instance_path: str) -> str:
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / 'sms.db'}"


def build_engine(url: str) -> Engine:
    """`hide_parameters` keeps numbers and texts out of error messages and logs."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    engine = create_engine(
        url,
        hide_parameters=True,
        pool_size=10,
        max_overflow=20,
        # A worker has more threads than connections: one that waits longer than
        # this for a connection answers 503 (STORAGE_ERRORS) instead of hanging
        # past a send's budget.
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_recycle=1800,
    )
    _ping_when_idle(engine)
    _unavailable_sqlstates(engine)
    return engine


POOL_PING_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before use, as `pool_pre_ping` does, but only when it
    has been idle for a second or more (a restarted server, a proxy's idle cut).

    `pool_pre_ping` costs a round trip on every checkout, one of five per webhook
    on PostgreSQL; a connection handed back a moment ago needs none. One that
    breaks in use is still noticed: SQLAlchemy invalidates the pool on the error.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get("checked_in_at")
        if idle_since is None or time.monotonic() - idle_since < POOL_PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # As `pool_pre_ping` does: a dead connection means the server went
            # away, so every connection made before now is discarded, not just this one.
            raise InvalidatePoolError("the pooled connection is gone") from error


def _unavailable_sqlstates(engine: Engine) -> None:
    """A PostgreSQL database the release phase has not migrated yet (web started
    before `flask migrate`), or one that takes no writes (a failover's demoted
    primary), is unavailable, as SQLite's "no such table" already is: 503 and
    `Retry-After` everywhere, not 500s, until it serves again."""

    @event.listens_for(engine, "handle_error")
    def _unavailable(context) -> OperationalError | None:
        return driver.unavailable(context.statement, context.original_exception)


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
        # Pages read through a memory map, not a read() call each: with a million
        # stored messages webhook ingest kept 0.80 of its empty-database rate with it,
        # 0.61-0.69 without (the benchmark's growth run). Address space, not memory:
        # the pages are the OS page cache's, shared by every connection and worker.
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A writer takes the lock up front, so two processes never deadlock
        # upgrading read locks; readers stay concurrent under WAL. On the DBAPI
        # connection itself: through `exec_driver_sql` the BEGIN cost a tenth of a
        # millisecond of CPU, every batch, with the write lock held.
        readonly = connection.get_execution_options().get("readonly")
        driver.run(connection, "BEGIN" if readonly else "BEGIN IMMEDIATE", ())

    return engine


def open_database(database_url: str, instance_path: str) -> Engine:
    """The engine for `database_url` (SQLite in the instance folder by default).

    Nothing is opened here: building an app (for `flask --help`, say) touches
    no database. An embedded SQLite database is migrated when the engine first
    connects, so the first run just works; PostgreSQL is migrated by the
    release phase (`flask migrate`) instead.
    """
    url = database_url or default_sqlite_url(instance_path)
    engine = build_engine(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        event.listen(engine, "first_connect", _migrate_embedded(url, parsed.database))
    return engine


def _migrate_embedded(url: str, database: str):
    def migrate_first(_dbapi_connection, _record) -> None:
        from app.store import migrate

        # A second engine: this one is in the middle of opening its first connection.
        migrating = build_engine(url)
        try:
            migrate.upgrade_with_lock(migrating, f"{database}.migrate.lock")
        finally:
            migrating.dispose()

    return migrate_first


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
        try:
            self._fd = os.open(f"{database}.write.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            # The database's folder is missing or not writable: the database is
            # unavailable (a 503, and a webhook Vonage sends again), not a fault.
            raise OperationalError("opening the SQLite write lock", None, error) from None

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


def _writer_queue(database: str) -> _WriterQueue:
    with _writer_queues_lock:
        return _writer_queues.get(database) or _writer_queues.setdefault(
            database, _WriterQueue(database)
        )


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
    queue = _writer_queue(database)
    if timeout is None:
        with queue.held(WRITER_QUEUE_TIMEOUT_SECONDS), engine.begin() as connection:
            yield connection
        return
    deadline = time.monotonic() + timeout
    with queue.held(timeout), engine.connect() as connection:
        with _busy_timeout(connection, deadline - time.monotonic()), connection.begin():
            yield connection


BUSY_TIMEOUT_SLACK_MS = 250


@contextmanager
def _busy_timeout(connection: Connection, seconds: float) -> Iterator[None]:
    """SQLite's own wait for a lock held outside the queue, bounded by `seconds`."""
    milliseconds = min(max(1, int(seconds * 1000)), SQLITE_BUSY_TIMEOUT_MS)
    if connection.dialect.name != "sqlite" or (
        milliseconds >= SQLITE_BUSY_TIMEOUT_MS - BUSY_TIMEOUT_SLACK_MS
    ):
        # Close enough to the connection's own: two PRAGMA round trips per batch
        # cost more than the quarter second a write might then wait past its time
        # (only ever while a process outside the writer queue holds SQLite's lock).
        yield
        return
    dbapi = connection.connection.dbapi_connection
    dbapi.execute(f"PRAGMA busy_timeout={milliseconds}")
    try:
        yield
    finally:
        # A broken connection is discarded by the pool anyway.
        with contextlib.suppress(sqlite3.Error):
            dbapi.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


GROUP_COMMIT_MAX_BATCH = 64
LEAD_FLOOR_SECONDS = 0.05


class _Pending:
    """One request's write, waiting for the batch that commits it."""

    __slots__ = ("work", "deadline", "done", "lead", "taken", "result", "error")

    def __init__(self, work: Callable[[Connection], Any], deadline: float) -> None:
        self.work = work
        self.deadline = deadline
        self.done = threading.Event()
        self.lead = False
        self.taken = False
        self.result: Any = None
        self.error: BaseException | None = None


class _GroupCommitter:
    """Concurrent writes of one worker share one transaction and one fsync.

    The first writer to arrive leads: it takes the write lock (SQLite's; a
    server has none to take), then runs every write queued so far in one
    transaction, and wakes each waiter with its own result once the commit is
    durable. If one write fails, each write of the batch runs again in a
    transaction of its own, so the failing one fails only its own request.
    Writes that queued meanwhile are led by the first of them. No waiter is
    answered before the commit that holds its write, so each request is as
    durable as with a transaction of its own; across workers the write lock
    changes hands once per batch instead of once per write.

    Each write waits for the lock at most its own `timeout` (a send answers
    within its budget): a write still queued when its time is up leaves the
    queue and fails alone, and a leader that cannot get the lock in its time
    fails alone and hands the lead on. A write is taken into a batch only once
    the lock is held, so it then waits only for that batch's commit.
    """

    def __init__(self, queue: _WriterQueue) -> None:
        self._queue = queue
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._leading = False

    def run(self, engine: Engine, work: Callable[[Connection], Any], timeout: float) -> Any:
        mine = _Pending(work, time.monotonic() + timeout)
        with self._lock:
            self._pending.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            if not mine.done.wait(timeout):
                with self._lock:
                    if not (mine.taken or mine.lead):
                        self._pending.remove(mine)
                        raise _queue_timeout()
                mine.done.wait()
            if not mine.lead:
                return _outcome(mine)
        self._lead(engine, mine)
        return _outcome(mine)

    def _lead(self, engine: Engine, mine: _Pending) -> None:
        batch: list[_Pending] = [mine]
        try:
            wait = max(LEAD_FLOOR_SECONDS, mine.deadline - time.monotonic())
            # The connection is checked out before the lock is taken: every worker
            # waits while the lock is held, so nothing that can be done before is done in it.
            with engine.connect() as connection, self._queue.held(wait):
                with self._lock:
                    batch = self._take_batch(mine)
                self._commit(connection, batch)
        except BaseException as error:
            # The lock was not had in time (or the commit broke): this batch fails.
            for pending in batch:
                if pending.error is None:
                    pending.error = error
            if not isinstance(error, Exception):
                raise
        finally:
            with self._lock:
                if mine in self._pending:
                    self._pending.remove(mine)
                successor = self._pending[0] if self._pending else None
                if successor is None:
                    self._leading = False
                else:
                    successor.lead = True
            for pending in batch:
                pending.done.set()
            if successor is not None:
                successor.done.set()

    def _take_batch(self, mine: _Pending) -> list[_Pending]:
        """The leader's write and the queued ones that may wait at least as long.

        The batch waits for SQLite's lock on the leader's time, so a write due
        sooner than the leader's stays queued and leads the next batch: no write
        (a send on its budget) waits past its own timeout. A write due later may
        have that wait cut to the leader's; it matters only when a process outside
        the writer queue holds SQLite's lock, and such a write fails with a 503.
        """
        # The leader is always the first queued (`run` and `_lead` hand the lead to
        # `_pending[0]`), so it heads the batch, whose busy timeout is batch[0]'s.
        batch = [p for p in self._pending if p.deadline >= mine.deadline]
        batch = batch[:GROUP_COMMIT_MAX_BATCH]
        taken = set(map(id, batch))
        self._pending = [p for p in self._pending if id(p) not in taken]
        for pending in batch:
            pending.taken = True
        return batch

    def _commit(self, connection: Connection, batch: list[_Pending]) -> None:
        """The batch in one transaction on `connection`; the caller holds the write lock."""
        seconds = max(LEAD_FLOOR_SECONDS, batch[0].deadline - time.monotonic())
        with _busy_timeout(connection, seconds):
            failed: list[_Pending] = []
            try:
                with connection.begin():
                    for pending in batch:
                        try:
                            pending.result = pending.work(connection)
                        except Exception:
                            failed.append(pending)
                            raise
                return
            except Exception:
                # The database itself failed (no lock in time, a broken COMMIT): the
                # whole batch fails, at once, never after a second wait.
                if len(batch) == 1 or not failed:
                    raise
            # One write failed and took the others back with it: each again in a
            # transaction of its own, so only the failing one fails, and on a server
            # no two writes of the batch hold row locks together (two workers'
            # batches over the same messages can deadlock; single writes cannot).
            for pending in batch:
                try:
                    with connection.begin():
                        pending.result = pending.work(connection)
                except Exception as error:  # noqa: BLE001 - handed to its own request
                    pending.error = error


def _outcome(pending: _Pending) -> Any:
    if pending.error is not None:
        raise pending.error
    return pending.result


# Per engine, and weakly: an engine that is dropped (tests make many) takes its committer along.
_committers: weakref.WeakKeyDictionary[Engine, _GroupCommitter] = weakref.WeakKeyDictionary()


def grouped_write(
    engine: Engine,
    work: Callable[[Connection], Any],
    timeout: float | None = None,
    *,
    batch_on_server: bool = False,
) -> Any:
    """`work(connection)` committed durably, sharing its commit with concurrent writes.

    Returns what `work` returned, or raises what it raised (its changes rolled
    back) or what the commit raised. Writes of one worker are batched (see
    `_GroupCommitter`): on SQLite files every write; on PostgreSQL only those
    marked `batch_on_server` (webhooks), since a send's writes take row locks
    (the daily count, an idempotency key) that a shared transaction would hold
    for its whole batch. Elsewhere `work` gets a transaction of its own.
    `timeout` bounds the wait for the write lock, as in `write_transaction`.
    `work` may run on another request's thread: it must use only its arguments.
    """
    sqlite = engine.dialect.name == "sqlite"
    database = engine.url.database if sqlite else None
    if (sqlite and database in (None, "", ":memory:")) or (not sqlite and not batch_on_server):
        with write_transaction(engine, timeout) as connection:
            return work(connection)
    committer = _committers.get(engine)
    if committer is None:
        queue = _writer_queue(database) if sqlite else _ServerQueue()
        with _writer_queues_lock:
            committer = _committers.setdefault(engine, _GroupCommitter(queue))
    return committer.run(engine, work, WRITER_QUEUE_TIMEOUT_SECONDS if timeout is None else timeout)


class _ServerQueue:
    """A database server (PostgreSQL) takes concurrent writers itself: no lock to queue for."""

    @contextmanager
    def held(self, _timeout: float) -> Iterator[None]:
        yield
