"""Group commit: concurrent writes of a worker share one transaction, each keeps its outcome."""

import threading
import time

import pytest
from sqlalchemy import text

from app.store import engine as engine_module
from app.store.engine import build_engine, grouped_write


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = build_engine(f"sqlite:///{tmp_path / 'group.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE items (name TEXT PRIMARY KEY)")
    yield engine
    engine.dispose()


@pytest.fixture
def batch_sizes(monkeypatch) -> list[int]:
    """The size of every batch committed, in order."""
    sizes: list[int] = []
    real_commit = engine_module._GroupCommitter._commit

    def recording_commit(self, connection, batch):
        sizes.append(len(batch))
        real_commit(self, connection, batch)

    monkeypatch.setattr(engine_module._GroupCommitter, "_commit", recording_commit)
    return sizes


def names(engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(text("SELECT name FROM items")).scalars())


def insert(name):
    def work(connection):
        connection.execute(text("INSERT INTO items (name) VALUES (:name)"), {"name": name})
        return f"stored {name}"

    return work


def test_a_write_returns_its_result_once_committed(sqlite_engine):
    assert grouped_write(sqlite_engine, insert("a")) == "stored a"
    assert names(sqlite_engine) == ["a"]


def test_a_failing_write_alone_raises_and_leaves_nothing(sqlite_engine):
    def fails(connection):
        insert("half")(connection)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        grouped_write(sqlite_engine, fails)
    assert names(sqlite_engine) == []


def test_concurrent_writes_share_commits_and_a_failure_fails_only_its_own(
    sqlite_engine, batch_sizes
):
    """Writes queued behind a leader are committed together: the duplicate key fails
    alone (its savepoint rolled back), every other write is stored and answered."""
    grouped_write(sqlite_engine, insert("taken"))
    commits = batch_sizes
    commits.clear()  # count from here: the setup's own write is not under test
    gate = threading.Event()

    def leader(connection):
        gate.wait(5)  # hold the first batch until every other write has queued
        return insert("first")(connection)

    outcomes: dict[str, object] = {}

    def submit(name, work):
        try:
            outcomes[name] = grouped_write(sqlite_engine, work)
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcomes[name] = error

    threads = [threading.Thread(target=submit, args=("first", leader))]
    threads[0].start()
    while not commits:
        time.sleep(0.001)
    followers = [f"w{i}" for i in range(10)] + ["taken"]
    for name in followers:
        thread = threading.Thread(target=submit, args=(name, insert(name)))
        threads.append(thread)
        thread.start()
    committer = engine_module._committers[sqlite_engine]
    while len(committer._pending) < len(followers):
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join(10)

    assert outcomes["first"] == "stored first"
    assert all(outcomes[f"w{i}"] == f"stored w{i}" for i in range(10))
    assert "UNIQUE" in str(outcomes["taken"])
    assert names(sqlite_engine) == sorted(["taken", "first", *(f"w{i}" for i in range(10))])
    assert commits == [1, len(followers)]


def test_a_failed_commit_fails_every_write_of_the_batch(sqlite_engine, monkeypatch):
    def refuse(*_args):
        raise engine_module._queue_timeout()

    monkeypatch.setattr(engine_module._WriterQueue, "held", refuse)
    with pytest.raises(Exception, match="database is locked"):
        grouped_write(sqlite_engine, insert("never"))
    monkeypatch.undo()
    assert names(sqlite_engine) == []
    assert grouped_write(sqlite_engine, insert("after")) == "stored after"


def submit_in_thread(engine, work, outcomes, name, **kwargs):
    def run():
        try:
            outcomes[name] = grouped_write(engine, work, **kwargs)
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcomes[name] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_queued_write_gives_up_after_its_timeout_and_is_never_run(sqlite_engine):
    """A send's write waits at most its budget: still queued when the time is up, it
    fails alone (database is locked) and is not committed later by another batch."""
    gate = threading.Event()
    outcomes: dict[str, object] = {}

    def slow(connection):
        gate.wait(10)
        return insert("slow")(connection)

    leader = submit_in_thread(sqlite_engine, slow, outcomes, "slow")
    committer = None
    while committer is None or not committer._leading:
        committer = engine_module._committers.get(sqlite_engine)
        time.sleep(0.001)

    with pytest.raises(Exception, match="database is locked"):
        grouped_write(sqlite_engine, insert("impatient"), timeout=0.05)
    gate.set()
    leader.join(10)

    assert outcomes["slow"] == "stored slow"
    assert committer._pending == []
    assert grouped_write(sqlite_engine, insert("later")) == "stored later"
    assert names(sqlite_engine) == ["later", "slow"]


def test_a_leader_without_the_lock_in_time_fails_alone_and_hands_the_lead_on(
    sqlite_engine, monkeypatch
):
    """Another process holds the write lock: the leader with a short budget fails when
    its time is up, and the write queued behind it, with a longer budget, leads next
    and is committed once the lock is free."""
    queue = engine_module._writer_queue(sqlite_engine.url.database)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with queue.held(10):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    holding.wait(5)
    outcomes: dict[str, object] = {}
    first = submit_in_thread(sqlite_engine, insert("short"), outcomes, "short", timeout=0.3)
    committer = None
    while committer is None or not committer._pending:
        committer = engine_module._committers.get(sqlite_engine)
        time.sleep(0.001)
    second = submit_in_thread(sqlite_engine, insert("patient"), outcomes, "patient", timeout=10)
    first.join(10)
    release.set()
    second.join(10)
    holder.join(10)

    assert "database is locked" in str(outcomes["short"])
    assert outcomes["patient"] == "stored patient"
    assert names(sqlite_engine) == ["patient"]


def test_a_write_due_sooner_than_the_leader_is_not_held_to_the_leaders_time(
    sqlite_engine, batch_sizes
):
    """A batch waits for SQLite's lock on its leader's time. A queued write whose own
    time ends sooner (a send near the end of its budget) is not taken into a batch led
    by a more patient write: it leads the next batch itself, on its own time."""
    batches = batch_sizes
    gate = threading.Event()

    def held_open(connection):
        gate.wait(10)  # the first batch stays open until both writes have queued
        return insert("first")(connection)

    outcomes: dict[str, object] = {}
    first = submit_in_thread(sqlite_engine, held_open, outcomes, "first", timeout=10)
    while not batches:
        time.sleep(0.001)
    committer = engine_module._committers[sqlite_engine]
    patient = submit_in_thread(sqlite_engine, insert("patient"), outcomes, "patient", timeout=10)
    while len(committer._pending) < 1:
        time.sleep(0.001)
    hurried = submit_in_thread(sqlite_engine, insert("hurried"), outcomes, "hurried", timeout=5)
    while len(committer._pending) < 2:
        time.sleep(0.001)
    gate.set()
    for thread in (first, patient, hurried):
        thread.join(10)

    assert outcomes == {
        "first": "stored first",
        "patient": "stored patient",
        "hurried": "stored hurried",
    }
    assert batches == [1, 1, 1]
    assert names(sqlite_engine) == ["first", "hurried", "patient"]


def test_a_batch_without_failures_runs_without_savepoints(sqlite_engine, batch_sizes):
    """Savepoints cost two statements a write while every other worker waits for the
    lock: a batch takes them only when one of its writes has failed."""
    from sqlalchemy import event

    statements: list[str] = []
    event.listen(sqlite_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    gate = threading.Event()

    def leader(connection):
        gate.wait(5)
        return insert("first")(connection)

    outcomes: dict[str, object] = {}
    threads = [submit_in_thread(sqlite_engine, leader, outcomes, "first")]
    while not batch_sizes:
        time.sleep(0.001)
    threads += [
        submit_in_thread(sqlite_engine, insert(f"w{i}"), outcomes, f"w{i}") for i in range(5)
    ]
    committer = engine_module._committers[sqlite_engine]
    while len(committer._pending) < 5:
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert batch_sizes == [1, 5]
    assert all(outcomes[f"w{i}"] == f"stored w{i}" for i in range(5))
    assert not [sql for sql in statements if "SAVEPOINT" in sql]
    assert names(sqlite_engine) == sorted(["first", *(f"w{i}" for i in range(5))])


@pytest.fixture
def any_engine(database_url):
    """The suite's database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set)."""
    engine = build_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS items")
        connection.exec_driver_sql("CREATE TABLE items (name TEXT PRIMARY KEY)")
    yield engine
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE items")
    engine.dispose()


def test_on_either_database_queued_writes_share_a_transaction_and_fail_alone(
    any_engine, batch_sizes
):
    """PostgreSQL too: one transaction (one WAL flush, two round trips fewer) per batch
    of webhook writes, each write still answered only once its batch has committed.
    The duplicate key fails alone: the others run again, each in its own transaction."""
    grouped_write(any_engine, insert("taken"))
    batch_sizes.clear()
    gate = threading.Event()

    def leader(connection):
        gate.wait(5)
        return insert("first")(connection)

    outcomes: dict[str, object] = {}
    threads = [submit_in_thread(any_engine, leader, outcomes, "first", batch_on_server=True)]
    wait_until(lambda: batch_sizes, "the first write leads a batch")
    followers = ["a", "b", "taken", "c"]
    threads += [
        submit_in_thread(any_engine, insert(name), outcomes, name, batch_on_server=True)
        for name in followers
    ]
    committer = engine_module._committers.get(any_engine)
    assert committer is not None, "no group committer for this database"
    wait_until(lambda: len(committer._pending) == len(followers), "the others queue behind it")
    gate.set()
    for thread in threads:
        thread.join(10)
    assert batch_sizes == [1, len(followers)]
    assert [outcomes[name] for name in ("first", "a", "b", "c")] == [
        "stored first", "stored a", "stored b", "stored c"
    ]  # fmt: skip
    assert isinstance(outcomes["taken"], Exception)
    assert names(any_engine) == ["a", "b", "c", "first", "taken"]


def test_on_postgresql_a_write_not_marked_for_batching_keeps_a_transaction_of_its_own(
    any_engine, batch_sizes
):
    """A send's writes take row locks (the daily count, an idempotency key) that a
    shared transaction would hold for its whole batch: on a server only the writes
    marked `batch_on_server` (webhooks) share one, with or without a budget."""
    if any_engine.dialect.name == "sqlite":
        pytest.skip("SQLite batches every write of a worker")
    assert grouped_write(any_engine, insert("claim")) == "stored claim"
    assert grouped_write(any_engine, insert("send"), timeout=2.0) == "stored send"
    assert batch_sizes == []
    assert grouped_write(any_engine, insert("webhook"), batch_on_server=True) == "stored webhook"
    assert batch_sizes == [1]
    assert names(any_engine) == ["claim", "send", "webhook"]


def wait_until(condition, what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.001)


def test_a_batch_waits_for_a_foreign_sqlite_lock_at_most_its_time_once(sqlite_engine):
    """A process outside the writer queue (a CLI, a backup, the sqlite3 shell) holds
    SQLite's lock: the batch fails once its time is up, and is not run again to wait
    a second time (a webhook's 10 s would become 20 s before its 503)."""
    import sqlite3

    foreign = sqlite3.connect(sqlite_engine.url.database, isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")
    ran: list[str] = []

    def recorded(name):
        def work(connection):
            ran.append(name)
            return insert(name)(connection)

        return work

    try:
        committer = engine_module._GroupCommitter(engine_module._ServerQueue())
        deadline = time.monotonic() + 0.5
        batch = [engine_module._Pending(recorded(n), deadline) for n in ("a", "b")]
        started = time.monotonic()
        with pytest.raises(Exception, match="locked"):
            with sqlite_engine.connect() as connection:
                committer._commit(connection, batch)
        elapsed = time.monotonic() - started
    finally:
        foreign.rollback()
        foreign.close()
    assert ran == []
    assert elapsed < 0.9, f"waited {elapsed:.2f} s for a 0.5 s budget"
    assert names(sqlite_engine) == []


def test_on_postgresql_batches_of_two_workers_over_the_same_rows_all_end_stored(any_engine):
    """Two workers' batches update rows X and Y in opposite orders: PostgreSQL breaks
    the lock cycle by failing one batch, whose writes then run again one transaction
    each (one row lock at a time cannot deadlock). Every write ends stored once."""
    if any_engine.dialect.name == "sqlite":
        pytest.skip("one writer at a time on SQLite: no lock cycle")
    with any_engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE items ADD COLUMN hits INTEGER DEFAULT 0")
        connection.exec_driver_sql("INSERT INTO items (name) VALUES ('x'), ('y')")
    barrier = threading.Barrier(2)
    met: list[int] = []

    def touch(name):
        def work(connection):
            connection.execute(
                text("UPDATE items SET hits = hits + 1 WHERE name = :name"), {"name": name}
            )
            return name

        return work

    def meet(connection):
        if len(met) < 2:  # only the first attempt of each batch waits for the other
            met.append(1)
            barrier.wait(5)

    engines = [build_engine(any_engine.url.render_as_string(hide_password=False)) for _ in "ab"]
    batches = [[touch("x"), meet, touch("y")], [touch("y"), meet, touch("x")]]
    outcomes: list[list] = []

    def worker(engine, works):
        committer = engine_module._GroupCommitter(engine_module._ServerQueue())
        batch = [engine_module._Pending(work, time.monotonic() + 10) for work in works]
        with engine.connect() as connection:
            committer._commit(connection, batch)
        outcomes.append([pending.error for pending in batch])

    threads = [
        threading.Thread(target=worker, args=pair) for pair in zip(engines, batches, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    for engine in engines:
        engine.dispose()
    assert outcomes == [[None, None, None], [None, None, None]]
    with any_engine.connect() as connection:
        hits = dict(connection.execute(text("SELECT name, hits FROM items")).all())
    assert hits == {"x": 2, "y": 2}


def test_sqlite_connections_are_durable_and_read_through_a_memory_map(sqlite_engine):
    """WAL with synchronous=FULL (every commit durable before its answer), and pages
    read through a memory map (ingest stays near its empty-database rate at 1M rows)."""
    with sqlite_engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
        assert pragma("PRAGMA mmap_size").scalar() == engine_module.SQLITE_MMAP_BYTES
