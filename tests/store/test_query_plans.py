"""The reply-routing reads go through `ix_messages_owned_to`, on SQLite and PostgreSQL.

Every inbound webhook asks whether its sender was sent to by a key. Read through
`ix_messages_to_created` instead, that visits every message to the number in the
routing window, owned or not; the benchmark's growth run lost half its ingest
rate to it at a million stored messages. A query uses a partial index only when
its WHERE repeats the index's terms literally, so a rewrite of one of these
queries can silently stop using it: these tests notice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, event

from app.store import ingest, messages, outbox
from app.store.driver import run

SINCE = datetime(2026, 11, 1)
UNTIL = datetime(2026, 11, 27)
INDEX = "ix_messages_owned_to"


def _plan(connection: Connection, sql: str, params: list) -> str:
    """The plan the database picks for `sql` (written with `?`), as one text."""
    if connection.dialect.name == "sqlite":
        rows = run(connection, f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        return "\n".join(str(row[-1]) for row in rows)
    # An empty table is read most cheaply by a sequential scan; what matters is
    # which index the planner can use once the table is large.
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = run(connection, f"EXPLAIN {sql}", params).fetchall()
    return "\n".join(row[0] for row in rows)


@contextmanager
def _plans(connection: Connection) -> Iterator[list[str]]:
    """The plan of every statement `connection` runs through SQLAlchemy meanwhile."""
    plans = []
    prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "

    def explain(_conn, cursor, statement, parameters, _context, _executemany):
        cursor.execute(prefix + statement, parameters)
        plans.append("\n".join(str(row[-1]) for row in cursor.fetchall()))

    if connection.dialect.name != "sqlite":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    event.listen(connection, "before_cursor_execute", explain)
    try:
        yield plans
    finally:
        event.remove(connection, "before_cursor_execute", explain)


def test_the_receiver_check_of_an_inbound_webhook_uses_the_owned_sends_index(connection):
    plan = _plan(connection, f"SELECT ({ingest._REPLY_RECEIVERS})", ["14155550100", SINCE])

    assert INDEX in plan


def test_finding_the_key_a_reply_goes_to_uses_the_owned_sends_index(connection):
    with _plans(connection) as plans:
        outbox.reply_owner(connection, "14155550100", SINCE)
        outbox.reply_owner(connection, "14155550100", SINCE, until=UNTIL)

    assert len(plans) == 2
    assert all(INDEX in plan for plan in plans), plans


def test_finding_every_key_that_sent_to_a_number_uses_the_owned_sends_index(connection):
    with _plans(connection) as plans:
        outbox.owners_texting(connection, "14155550100")
        outbox.owners_texting(connection, "14155550100", until=UNTIL)

    assert len(plans) == 2
    assert all(INDEX in plan for plan in plans), plans


def test_a_message_s_status_events_are_found_through_the_unique_index(connection):
    """`message_uuid` has no index of its own: the unique (message_uuid, status,
    timestamp) one serves these look-ups, and a status webhook writes one index less."""
    plan = _plan(connection, messages._EVENT_STATUSES, ["7f3c2a9e-0000-4000-8000-000000000001"])
    with _plans(connection) as plans:
        outbox.events_for_message(connection, "7f3c2a9e-0000-4000-8000-000000000001")

    for text in [plan, *plans]:
        assert "SCAN message_events" not in text and "Seq Scan" not in text, text
        assert "message_events" in text
