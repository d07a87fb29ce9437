"""Plain SQL on the DBAPI connection that SQLAlchemy holds: the hot paths' statements.

Through SQLAlchemy Core a statement costs about 0.1 ms of CPU before the
database does any work (parameter processing, the compiled cache, result
wrapping). The webhook path (`app.store.ingest`) and the send path
(`app.store.messages`, `opt_outs`, `daily_count`) run theirs here instead:
plain SQL written once with `?` placeholders, executed on the DBAPI connection
SQLAlchemy already holds, so it runs inside the same transaction (the group
commit's shared one, for a webhook) as everything else the request writes.
sqlite3 and psycopg keep each statement prepared per connection. Values pass
through the very bind processors SQLAlchemy would apply to those columns, so a
row written here is stored exactly as one written through Core, and a driver
error is raised as SQLAlchemy's own `DBAPIError` (a 503, as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError, OperationalError

#: PostgreSQL's SQLSTATEs of a database that cannot serve this code yet: a schema
#: older than the code (a table or column not there: the web started before the
#: release phase's `migrate`), or a server that takes no writes (a standby, or a
#: primary demoted by a failover). Raised as unavailable (503, retry later), as
#: SQLite's "no such table" and a locked file are, rather than as a 500.
UNAVAILABLE_SQLSTATES = frozenset(
    {
        "42P01",  # undefined_table
        "42703",  # undefined_column
        "25006",  # read_only_sql_transaction
    }
)


def run(connection: Connection, sql: str, params: Sequence[Any]):
    """`sql` (written with `?`) on the DBAPI connection; the cursor."""
    dialect = connection.dialect
    if dialect.paramstyle != "qmark":
        sql = _PLACEHOLDERS.get(sql) or _PLACEHOLDERS.setdefault(sql, sql.replace("?", "%s"))
    try:
        return connection.connection.dbapi_connection.execute(sql, params)
    except dialect.loaded_dbapi.Error as error:
        raise unavailable(sql, error) or DBAPIError.instance(
            sql, None, error, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
        ) from error


def unavailable(statement: str | None, error: Exception) -> OperationalError | None:
    """`error` as unavailable (503, retry later) when its SQLSTATE says so, else None."""
    if getattr(error, "sqlstate", None) not in UNAVAILABLE_SQLSTATES:
        return None
    return OperationalError(statement, None, error, hide_parameters=True)


_PLACEHOLDERS: dict[str, str] = {}
_PROCESSORS: dict[tuple[str, str, str], Any] = {}


def bind(connection: Connection, table: Table, column: str, value: Any) -> Any:
    """`value` as SQLAlchemy would send it for `table.column` (JSON encoded, datetime as text…)."""
    dialect = connection.dialect
    key = (dialect.name, table.name, column)
    try:
        processor = _PROCESSORS[key]
    except KeyError:
        column_type = table.c[column].type.dialect_impl(dialect)
        processor = _PROCESSORS[key] = column_type.bind_processor(dialect)
    return processor(value) if processor is not None else value


_INSERTS: dict[tuple[str, tuple[str, ...], str], str] = {}


def insert(
    connection: Connection,
    table: Table,
    row: dict[str, Any],
    suffix: str = "",
    suffix_params: Sequence[Any] = (),
):
    """INSERT `row` (column names as keys) into `table`, then `suffix` (an ON CONFLICT
    or RETURNING clause, its `?` taking `suffix_params`); the cursor."""
    columns = tuple(row)
    key = (table.name, columns, suffix)
    sql = _INSERTS.get(key)
    if sql is None:
        sql = _INSERTS[key] = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) {suffix}"
        ).rstrip()
    params = [bind(connection, table, column, row[column]) for column in columns]
    return run(connection, sql, [*params, *suffix_params])
