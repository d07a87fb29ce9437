"""The webhook hot path's SQL, run on the DBAPI connection itself.

Every webhook runs these statements. Through SQLAlchemy Core each costs about
0.1 ms of CPU before the database does any work (parameter processing, the
compiled cache, result wrapping); here each is plain SQL, written once per
dialect, executed on the DBAPI connection that SQLAlchemy already holds, so it
runs inside the same transaction (the group commit's shared one) as
everything else the webhook writes. sqlite3 and psycopg keep each statement
prepared per connection. Values pass through the very bind processors
SQLAlchemy would apply to those columns, so a row written here is stored
exactly as one written through Core, and a driver error is raised as
SQLAlchemy's own `DBAPIError` (a 503 to the webhook, as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table

from app.status import ORDER, statuses_below
from app.store.driver import bind as _bind
from app.store.driver import insert
from app.store.driver import run as _run
from app.store.models import Message, MessageEvent

messages = Message.__table__
message_events = MessageEvent.__table__


def _insert_returning(
    connection: Connection,
    table: Table,
    row: dict[str, Any],
    conflict: str,
    returning: str,
    returning_params: Sequence[Any] = (),
):
    """INSERT … ON CONFLICT (`conflict`) DO NOTHING RETURNING `returning`: the returned
    row when one was stored, else None."""
    suffix = f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}"
    return insert(connection, table, row, suffix, returning_params).fetchone()


def insert_inbound_reply(
    connection: Connection, values: dict[str, Any], since: datetime
) -> bool | None:
    """The inbound message row and, in the same statement, whether a reply from its
    sender can have a receiver (a key that sent to it since `since`, or an enabled
    `scope: all` subscription): None when its `message_uuid` is already stored.
    One statement fewer while the write lock is held."""
    params = [values["from_number"], _bind(connection, messages, "created_at", since)]
    returned = _insert_returning(
        connection, messages, values, "message_uuid", f"id, ({_REPLY_RECEIVERS})", params
    )
    return None if returned is None else bool(returned[1])


def insert_status_event(connection: Connection, values: dict[str, Any]) -> bool | None:
    """The status event row and, in the same statement, whether the event can have a
    receiver (`_status_receivers`): None when the same (uuid, status, timestamp) is
    stored already. One statement fewer while the write lock is held."""
    client_ref = values.get("client_ref") or None
    returned = _insert_returning(
        connection,
        message_events,
        values,
        "message_uuid, status, timestamp",
        f"id, ({_status_receivers(client_ref)})",
        _target_params(values["message_uuid"], client_ref),
    )
    return None if returned is None else bool(returned[1])


# The message a status event is about: the one with its uuid or, not yet linked,
# the outbound one whose id Vonage echoes as `client_ref` (as messages._event_target).
_TARGET = "message_uuid = ?"
_TARGET_OR_REF = (
    "(message_uuid = ? OR (id = ? AND direction = 'outbound' AND message_uuid IS NULL))"
)


def _target_params(message_uuid: str, client_ref: str | None) -> list[Any]:
    return [message_uuid, client_ref] if client_ref else [message_uuid]


def _status_list(status: str) -> str:
    # Only names from app.status.ORDER are written into the SQL, never a value received.
    return ", ".join(f"'{name}'" for name in statuses_below(status) if name in ORDER)


def advance(
    connection: Connection,
    message_uuid: str,
    client_ref: str | None,
    status: str,
    error: dict[str, Any] | None,
    now: datetime,
) -> bool:
    """Move the event's message forward to `status` (never backwards), taking the event's
    error (or none) and linking it to `message_uuid`; True when it moved."""
    below = _status_list(status)
    if not below:
        return False
    target = _TARGET_OR_REF if client_ref else _TARGET
    sql = (
        "UPDATE messages SET status = ?, updated_at = ?, error = ?, "
        f"message_uuid = coalesce(message_uuid, ?) WHERE {target} AND status IN ({below})"
    )
    params = [
        status,
        _bind(connection, messages, "updated_at", now),
        _bind(connection, messages, "error", error),
        message_uuid,
        *_target_params(message_uuid, client_ref),
    ]
    return _run(connection, sql, params).rowcount > 0


def record_billing(
    connection: Connection,
    message_uuid: str,
    client_ref: str | None,
    billing: dict[str, Any],
) -> None:
    """Vonage's price, currency and billed segments onto the outbound message, each only
    when the event carries it (a billed count replaces the local estimate)."""
    target = _TARGET_OR_REF if client_ref else _TARGET
    sql = (
        "UPDATE messages SET price = coalesce(?, price), currency = coalesce(?, currency), "
        f"segments = coalesce(?, segments) WHERE {target} AND direction = 'outbound'"
    )
    params = [
        billing["price"],
        billing["currency"],
        billing["segments"],
        *_target_params(message_uuid, client_ref),
    ]
    _run(connection, sql, params)


_BROADCAST = (
    "EXISTS (SELECT 1 FROM subscriptions s WHERE s.disabled_at IS NULL AND s.scope = 'all')"
)
# Aliased: these run in the RETURNING clause of an insert into `messages` or
# `message_events`, whose own columns must not be what the names resolve to.
_REPLY_RECEIVERS = (
    "SELECT EXISTS (SELECT 1 FROM messages m WHERE m.to_number = ? AND m.created_at >= ? "
    f"AND m.direction = 'outbound' AND m.owner IS NOT NULL) OR {_BROADCAST}"
)


def _status_receivers(client_ref: str | None) -> str:
    """Whether a status event can have a receiver: a message it may be about that has
    an owner, or any enabled `scope: all` subscription (parameters: `_target_params`)."""
    target = (
        "(m.message_uuid = ? OR (m.id = ? AND m.direction = 'outbound'))"
        if client_ref
        else "m.message_uuid = ?"
    )
    return (
        f"SELECT EXISTS (SELECT 1 FROM messages m WHERE {target} AND m.owner IS NOT NULL) "
        f"OR {_BROADCAST}"
    )
