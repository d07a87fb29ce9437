"""Bulk rows straight into the migrated SQLite schema: fast, and not through HTTP."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from tests.benchmark.payloads import SERVICE_NUMBER, TEXTS

CHUNK = 50_000
COLUMNS = (
    "id", "message_uuid", "direction", "from_number", "to_number", "text", "status",
    "segments", "encoding", "client_ref", "error", "created_at", "updated_at",
)  # fmt: skip
INSERT = f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def _when(moment: datetime) -> str:
    """SQLAlchemy's storage format for DateTime on SQLite."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _row(message: dict[str, Any]) -> tuple:
    created = _when(message["created_at"])
    return (
        message["id"],
        message["message_uuid"],
        message["direction"],
        message["from_number"],
        message["to_number"],
        message["text"],
        message["status"],
        1,
        "GSM-7",
        None,
        None,
        created,
        created,
    )


def history(count: int, *, seed: int, now: datetime) -> Iterator[dict[str, Any]]:
    """`count` past messages, both directions, over the last 30 days, 10 000 numbers."""
    rng = random.Random(seed)
    for _ in range(count):
        number = f"1415555{rng.randrange(10000):04d}"
        inbound = rng.random() < 0.5
        yield {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "message_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "direction": "inbound" if inbound else "outbound",
            "from_number": number if inbound else SERVICE_NUMBER,
            "to_number": SERVICE_NUMBER if inbound else number,
            "text": rng.choice(TEXTS),
            "status": "received" if inbound else rng.choice(("delivered", "submitted")),
            "created_at": now - timedelta(seconds=rng.uniform(60, 30 * 86400)),
        }


def insert_messages(database: str, messages: Iterable[dict[str, Any]]) -> int:
    """Insert in large transactions, then checkpoint so the run starts with a small WAL."""
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    inserted = 0
    try:
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA cache_size=-512000")
        chunk: list[tuple] = []
        for message in messages:
            chunk.append(_row(message))
            if len(chunk) >= CHUNK:
                inserted += _write(connection, chunk)
                chunk = []
        if chunk:
            inserted += _write(connection, chunk)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return inserted


def _write(connection: sqlite3.Connection, rows: list[tuple]) -> int:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(INSERT, rows)
    connection.execute("COMMIT")
    return len(rows)


def count_messages(database: str) -> int:
    connection = sqlite3.connect(database, timeout=30)
    try:
        return connection.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        connection.close()


def insert_messages_url(url: str, messages: Iterable[dict[str, Any]]) -> int:
    """The same rows through SQLAlchemy, for a PostgreSQL database."""
    from sqlalchemy import create_engine, insert

    from app.store.models import Message

    rows = [dict(zip(COLUMNS, _row(message), strict=True)) for message in messages]
    for row in rows:
        row["created_at"] = row["updated_at"] = datetime.strptime(
            row["created_at"], "%Y-%m-%d %H:%M:%S.%f"
        )
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for start in range(0, len(rows), CHUNK):
                connection.execute(insert(Message.__table__), rows[start : start + CHUNK])
    finally:
        engine.dispose()
    return len(rows)
