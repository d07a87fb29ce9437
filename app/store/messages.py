"""Messages and their status events: the queries behind sends, webhooks and history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from app.status import ORDER, message_error, rank, statuses_below
from app.store import driver, ingest
from app.store.dialect import utcnow
from app.store.models import Message, MessageEvent

messages = Message.__table__
events = MessageEvent.__table__


def insert_outbound(connection: Connection, row: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    values = {
        **row,
        "direction": "outbound",
        "channel": "sms",
        "message_type": "text",
        "created_at": now,
        "updated_at": now,
    }
    driver.insert(connection, messages, values)
    return values


def mark_sent(connection: Connection, message_id: str, message_uuid: str) -> None:
    """Link Vonage's uuid, then let any status that raced ahead of us win."""
    now = utcnow()
    driver.run(
        connection,
        _MARK_SENT,
        [message_uuid, driver.bind(connection, messages, "updated_at", now), message_id],
    )
    latest = _best_event_status(connection, message_uuid)
    if latest:
        _advance(connection, messages.c.id == message_id, latest, None, now)


def mark_outcome(
    connection: Connection, message_id: str, status: str, error: dict[str, Any]
) -> None:
    """`unknown` (maybe sent) or `failed` (certainly not), unless a webhook settled it."""
    connection.execute(
        _MARK_OUTCOME,
        {"message_id": message_id, "new_status": status, "new_error": error, "now": utcnow()},
    )


def mark_vonage_called(connection: Connection, message_id: str) -> bool:
    """The phase marker, written just before Vonage is called; False when the row is
    no longer `pending` (settled as abandoned), so the send must not go ahead."""
    now = driver.bind(connection, messages, "vonage_called_at", utcnow())
    return driver.run(connection, _MARK_VONAGE_CALLED, [now, message_id]).rowcount == 1


# The send path's statements run on the driver connection, as the webhook's do
# (see `app.store.driver`): through Core each cost ~0.1 ms of CPU per send.
_BELOW_SUBMITTED_SQL = ", ".join(f"'{name}'" for name in statuses_below("submitted"))
_MARK_SENT = (
    "UPDATE messages SET message_uuid = ?, updated_at = ?, status = CASE WHEN status IN "
    f"({_BELOW_SUBMITTED_SQL}) THEN 'submitted' ELSE status END WHERE id = ?"
)
_MARK_VONAGE_CALLED = "UPDATE messages SET vonage_called_at = ? WHERE id = ? AND status = 'pending'"
_EVENT_STATUSES = "SELECT DISTINCT status FROM message_events WHERE message_uuid = ?"
_BELOW_SUBMITTED = messages.c.status.in_(statuses_below("submitted"))
_MARK_OUTCOME = (
    update(messages)
    .where(messages.c.id == bindparam("message_id"), _BELOW_SUBMITTED)
    .values(
        status=bindparam("new_status"),
        error=bindparam("new_error", type_=messages.c.error.type),
        updated_at=bindparam("now"),
    )
)


@dataclass(frozen=True)
class Settled:
    """A `pending` row whose request can no longer be alive, settled by its phase."""

    message_id: str
    status: str
    created_at: datetime


def settle_abandoned(
    connection: Connection, cutoff: datetime, message_id: str | None = None, limit: int = 100
) -> list[Settled]:
    """Rows still `pending` though created before `cutoff`: `unknown` when Vonage may
    have been called (a status webhook still settles them), `failed` when it
    certainly was not. One row by `message_id`, or up to `limit` of them."""
    query = select(messages.c.id, messages.c.vonage_called_at, messages.c.created_at).where(
        messages.c.status == "pending",
        messages.c.direction == "outbound",
        messages.c.created_at < cutoff,
    )
    query = query.where(messages.c.id == message_id) if message_id else query.limit(limit)
    settled = []
    for row in connection.execute(query).all():
        status = "failed" if row.vonage_called_at is None else "unknown"
        error = message_error(
            "about:blank",
            "Send interrupted",
            "the request sending this message stopped before it finished",
        )
        moved = connection.execute(
            update(messages)
            .where(messages.c.id == row.id, messages.c.status == "pending")
            .values(status=status, error=error, updated_at=utcnow())
        )
        if moved.rowcount:
            settled.append(Settled(row.id, status, row.created_at))
    return settled


def insert_inbound(connection: Connection, row: dict[str, Any], *, since: datetime) -> bool | None:
    """None when Vonage re-delivered a message we already have; else whether a reply
    from its sender can have a receiver (a key that sent to it since `since`, or a
    `scope: all` subscription), checked in the same statement."""
    now = utcnow()
    values = {**row, "direction": "inbound", "status": "received"}
    values["created_at"] = values["updated_at"] = now
    return ingest.insert_inbound_reply(connection, values, since)


def insert_event(connection: Connection, event: dict[str, Any]) -> str | None:
    """Keep the event (even for an unknown message), then move its message forward.

    None for a duplicate; else `"advanced"` if the message's status moved, `"kept"` if not.
    """
    return insert_event_checking_receivers(connection, event)[0]


def insert_event_checking_receivers(
    connection: Connection, event: dict[str, Any]
) -> tuple[str | None, bool]:
    """`insert_event`'s effect, and whether the event can have a receiver (a message it
    may be about has an owner, or a `scope: all` subscription exists), checked in the
    statement that stores it."""
    now = utcnow()
    receivers = ingest.insert_status_event(connection, {**event, "received_at": now})
    if receivers is None:
        return None, False
    message_uuid, client_ref = event["message_uuid"], event.get("client_ref") or None
    moved = ingest.advance(
        connection, message_uuid, client_ref, event["status"], event.get("error") or None, now
    )
    billing = {name: event.get(name) for name in ("price", "currency", "segments")}
    if any(value is not None for value in billing.values()):
        # Whether or not the status moved: `delivered` often arrives before the
        # `submitted` that carries the price.
        ingest.record_billing(connection, message_uuid, client_ref, billing)
    return ("advanced" if moved else "kept"), receivers


def _advance(
    connection: Connection,
    target,
    status: str,
    event: dict[str, Any] | None,
    now: datetime,
    link_uuid: str | None = None,
) -> bool:
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if event is not None:
        # The error describes the current status: a later status without one clears it.
        values["error"] = event.get("error") or None
    if link_uuid is not None:
        values["message_uuid"] = func.coalesce(messages.c.message_uuid, link_uuid)
    result = connection.execute(
        update(messages).where(target, messages.c.status.in_(statuses_below(status))).values(values)
    )
    return result.rowcount > 0


def _best_event_status(connection: Connection, message_uuid: str) -> str | None:
    seen = driver.run(connection, _EVENT_STATUSES, [message_uuid]).fetchall()
    known = [status for (status,) in seen if status in ORDER]
    return max(known, key=rank) if known else None


@dataclass(frozen=True)
class MessageFilter:
    direction: str | None = None
    number: str | None = None
    status: str | None = None
    channel: str | None = None


def list_messages(
    connection: Connection,
    filters: MessageFilter,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paged on (created_at, id)."""
    query = select(messages)
    if filters.direction:
        query = query.where(messages.c.direction == filters.direction)
    if filters.status:
        query = query.where(messages.c.status == filters.status)
    if filters.channel:
        query = query.where(messages.c.channel == filters.channel)
    if filters.number:
        query = query.where(
            or_(messages.c.to_number == filters.number, messages.c.from_number == filters.number)
        )
    if after is not None:
        created_at, message_id = after
        query = query.where(
            or_(
                messages.c.created_at < created_at,
                and_(messages.c.created_at == created_at, messages.c.id < message_id),
            )
        )
    query = query.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(limit)
    return [dict(row._mapping) for row in connection.execute(query)]


def find_message(connection: Connection, identifier: str) -> dict[str, Any] | None:
    """By Vonage's `message_uuid`, or by our own `id`."""
    row = connection.execute(
        select(messages).where(
            or_(messages.c.message_uuid == identifier, messages.c.id == identifier)
        )
    ).first()
    return dict(row._mapping) if row else None


def events_for(connection: Connection, message_uuid: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(events)
        .where(events.c.message_uuid == message_uuid)
        .order_by(events.c.timestamp, events.c.id)
    )
    return [dict(row._mapping) for row in rows]
