"""The reply-routing reads go through `ix_messages_owned_to`, on SQLite and PostgreSQL.

Every inbound webhook asks whether its sender was sent to by a key. Read through
`ix_messages_to_created` instead, that visits every message to the number in the
routing window, owned or not; the benchmark's growth run lost half its ingest
rate to it at a million stored messages. A query uses a partial index only when
its WHERE repeats the index's terms literally, so a rewrite of one of these
queries can silently stop using it: these tests notice.
"""

from __future__ import annotations

import re
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
    numbered = iter(range(1, len(params) + 1))
    return _generic_plan(connection, re.sub(r"\?", lambda _: f"${next(numbered)}", sql))


_PYFORMAT = re.compile(r"%\((\w+)\)s")


def _generic_plan(connection: Connection, sql: str) -> str:
    """PostgreSQL's generic plan of `sql` (written with `$1`…): the plan a statement
    that psycopg prepares (from its 5th run on a connection) may be given for every
    run, chosen without the parameters' values. A partial index whose terms are
    parameters instead of literals is usable only in plans made for given values."""
    # An empty table is read most cheaply by a sequential scan; what matters is
    # which index the planner can use once the table is large. SET LOCAL ends
    # with the test's transaction; a prepared statement does not, hence DEALLOCATE.
    # On the driver connection: this runs inside `_plans`' listener too.
    driver = connection.connection.dbapi_connection
    driver.execute("SET LOCAL enable_seqscan = off")
    driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    driver.execute(f"PREPARE plan_probe AS {sql}")
    try:
        count = len(set(re.findall(r"\$(\d+)", sql)))
        arguments = ", ".join(["NULL"] * count)
        rows = driver.execute(f"EXPLAIN EXECUTE plan_probe({arguments})").fetchall()
    finally:
        driver.execute("DEALLOCATE plan_probe")
    return "\n".join(row[0] for row in rows)


@contextmanager
def _plans(connection: Connection) -> Iterator[list[str]]:
    """The plan of every statement `connection` runs through SQLAlchemy meanwhile
    (on PostgreSQL its generic plan)."""
    plans = []

    def explain(_conn, cursor, statement, parameters, _context, _executemany):
        if connection.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append("\n".join(str(row[-1]) for row in cursor.fetchall()))
            return
        names = list(dict.fromkeys(_PYFORMAT.findall(statement)))
        numbered = _PYFORMAT.sub(lambda match: f"${names.index(match[1]) + 1}", statement)
        plans.append(_generic_plan(connection, numbered.replace("%%", "%")))

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
