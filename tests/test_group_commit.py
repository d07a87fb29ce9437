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
    sqlite_engine, monkeypatch
):
    """Writes queued behind a leader are committed together: the duplicate key fails
    alone (its savepoint rolled back), every other write is stored and answered."""
    grouped_write(sqlite_engine, insert("taken"))
    commits = []
    real_commit = engine_module._GroupCommitter._commit

    def counting_commit(self, engine, batch):
        commits.append(len(batch))
        real_commit(self, engine, batch)

    monkeypatch.setattr(engine_module._GroupCommitter, "_commit", counting_commit)
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
