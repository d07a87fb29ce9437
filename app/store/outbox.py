"""Subscriptions, events and their deliveries: the outbox and the dispatcher's queue.

The database is the queue. A delivery row is claimed by setting a lease
(`locked_until`, `locked_by`); on PostgreSQL the claim also takes row locks
with `FOR NO KEY UPDATE SKIP LOCKED`, so several dispatchers never claim the
same row or the same subscription's lane at once. On SQLite the claim runs in
a `BEGIN IMMEDIATE` transaction, and one dispatcher runs per database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, or_, select, update

from app.store.models import (
    OWNED_OUTBOUND,
    Delivery,
    Event,
    Message,
    MessageEvent,
    Subscription,
)

subscriptions = Subscription.__table__
events = Event.__table__
deliveries = Delivery.__table__
messages = Message.__table__
message_events = MessageEvent.__table__

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATES = (PENDING, DELIVERED, FAILED)
# An event with no subscription to push it to: readable only in the pull feed.
NOT_PUSHED = "none"
DISABLED_BY_OWNER = "disabled by its owner"


# Subscriptions ---------------------------------------------------------------


def insert_subscription(connection: Connection, row: dict[str, Any]) -> None:
    connection.execute(subscriptions.insert().values(**row))


def count_subscriptions(connection: Connection, owner: str) -> int:
    query = select(func.count()).where(subscriptions.c.owner == owner)
    return connection.execute(query).scalar_one()


def list_subscriptions(connection: Connection, owner: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(subscriptions)
        .where(subscriptions.c.owner == owner)
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    )
    return [dict(row._mapping) for row in rows]


def get_subscription(
    connection: Connection, owner: str, subscription_id: str
) -> dict[str, Any] | None:
    row = connection.execute(
        select(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.owner == owner
        )
    ).first()
    return dict(row._mapping) if row else None


def delete_subscription(connection: Connection, owner: str, subscription_id: str) -> bool:
    """Its deliveries go with it (the events stay in the owner's feed).

    Only the owner's: another key's id deletes nothing, not even deliveries.
    """
    owned = select(subscriptions.c.id).where(
        subscriptions.c.id == subscription_id, subscriptions.c.owner == owner
    )
    connection.execute(delete(deliveries).where(deliveries.c.subscription_id.in_(owned)))
    result = connection.execute(
        delete(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.owner == owner
        )
    )
    return result.rowcount > 0


def rotate_secret(
    connection: Connection,
    owner: str,
    subscription_id: str,
    new_secret: str,
    previous_until: datetime,
) -> bool:
    result = connection.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id, subscriptions.c.owner == owner)
        .values(
            previous_secret=subscriptions.c.secret,
            previous_secret_until=previous_until,
            secret=new_secret,
        )
    )
    return result.rowcount > 0


def update_subscription(
    connection: Connection,
    owner: str,
    subscription_id: str,
    changes: dict[str, Any],
    now: datetime,
) -> bool:
    """Change the owner's subscription: `url`, `event_types`, `scope` and/or `enabled`.

    Disabling settles what was waiting as failed, as a 410 does (`redeliver`
    or `events replay` queue it again once enabled); enabling clears the
    reason; a new URL makes what waits to retry due now (its attempts kept).
    Deliveries already made and the secret are left alone.
    """
    values = {name: value for name, value in changes.items() if name != "enabled"}
    if changes.get("enabled") is True:
        values.update(disabled_at=None, disabled_reason=None)
    owned = and_(subscriptions.c.id == subscription_id, subscriptions.c.owner == owner)
    if values:
        found = connection.execute(update(subscriptions).where(owned).values(**values)).rowcount
    else:
        found = connection.execute(select(subscriptions.c.id).where(owned)).first() is not None
    if found and changes.get("enabled") is False:
        disable_subscription(connection, subscription_id, DISABLED_BY_OWNER, now)
    elif found and "url" in changes:
        connection.execute(
            update(deliveries)
            .where(
                deliveries.c.subscription_id == subscription_id,
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        )
    return bool(found)


def disable_subscription(
    connection: Connection, subscription_id: str, reason: str, now: datetime
) -> None:
    """The endpoint is gone (410): stop, and settle what was waiting for it as failed."""
    connection.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id, subscriptions.c.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=reason)
    )
    connection.execute(
        update(deliveries)
        .where(deliveries.c.subscription_id == subscription_id, deliveries.c.status == PENDING)
        .values(status=FAILED, last_error=reason, locked_until=None, locked_by=None)
    )


_SUBSCRIBER_COLUMNS = (
    subscriptions.c.id,
    subscriptions.c.owner,
    subscriptions.c.scope,
    subscriptions.c.event_types,
)
# Built once with bound parameters: these run in every webhook's transaction, and
# SQLAlchemy's compiled cache then serves them without rebuilding the statement.
_SCOPE_ALL = select(*_SUBSCRIBER_COLUMNS).where(
    subscriptions.c.disabled_at.is_(None), subscriptions.c.scope == "all"
)
_SCOPE_ALL_OR_OWNERS = select(*_SUBSCRIBER_COLUMNS).where(
    subscriptions.c.disabled_at.is_(None),
    or_(
        subscriptions.c.scope == "all",
        subscriptions.c.owner.in_(bindparam("owners", expanding=True)),
    ),
)
_REPLY_OWNER = (
    select(messages.c.owner)
    .where(
        messages.c.to_number == bindparam("number"),
        messages.c.created_at >= bindparam("since"),
        OWNED_OUTBOUND,
    )
    .order_by(messages.c.created_at.desc())
    .limit(1)
)


def active_subscribers(connection: Connection, owners: set[str]) -> list[dict[str, Any]]:
    """Enabled subscriptions of `owners`, and every enabled `scope: all` one."""
    if owners:
        rows = connection.execute(_SCOPE_ALL_OR_OWNERS, {"owners": sorted(owners)})
    else:
        rows = connection.execute(_SCOPE_ALL)
    return [dict(row._mapping) for row in rows]


# Routing ---------------------------------------------------------------------


def reply_owner(
    connection: Connection, number: str, since: datetime, until: datetime | None = None
) -> str | None:
    """The key that most recently sent to `number` since `since` (and up to `until`)."""
    if until is None:
        return connection.execute(_REPLY_OWNER, {"number": number, "since": since}).scalar()
    return connection.execute(
        _REPLY_OWNER.where(messages.c.created_at <= bindparam("until")),
        {"number": number, "since": since, "until": until},
    ).scalar()


def owners_texting(connection: Connection, number: str, until: datetime | None = None) -> set[str]:
    """Every key that ever sent to `number` (of the messages still kept), up to `until`."""
    condition = messages.c.to_number == number
    if until is not None:
        condition = and_(condition, messages.c.created_at <= until)
    rows = connection.execute(
        select(messages.c.owner).where(condition, OWNED_OUTBOUND).distinct()
    ).scalars()
    return set(rows)


def _message_for_status(by_client_ref: bool):
    condition = messages.c.message_uuid == bindparam("message_uuid")
    if by_client_ref:
        condition = or_(
            condition,
            and_(messages.c.id == bindparam("client_ref"), messages.c.direction == "outbound"),
        )
    return select(messages).where(condition).limit(1)


_MESSAGE_FOR_STATUS = {False: _message_for_status(False), True: _message_for_status(True)}


def message_for_status(
    connection: Connection, message_uuid: str, client_ref: str | None
) -> dict[str, Any] | None:
    """The message a status event is about: by Vonage's uuid, or by our id in `client_ref`."""
    row = connection.execute(
        _MESSAGE_FOR_STATUS[bool(client_ref)],
        {"message_uuid": message_uuid, "client_ref": client_ref},
    ).first()
    return dict(row._mapping) if row else None


def message_by_uuid(connection: Connection, message_uuid: str) -> dict[str, Any] | None:
    query = select(messages).where(messages.c.message_uuid == message_uuid)
    row = connection.execute(query).first()
    return dict(row._mapping) if row else None


# Events ----------------------------------------------------------------------


def insert_event(connection: Connection, row: dict[str, Any]) -> None:
    connection.execute(events.insert().values(**row))


def insert_deliveries(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(deliveries.insert(), rows)


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None
    status: str | None = None


def _status_condition(status: str):
    of_event = deliveries.c.event_id == events.c.id
    any_pending = exists().where(of_event, deliveries.c.status == PENDING)
    any_failed = exists().where(of_event, deliveries.c.status == FAILED)
    any_delivery = exists().where(of_event)
    if status == PENDING:
        return any_pending
    if status == FAILED:
        return and_(any_failed, ~any_pending)
    if status == DELIVERED:
        return and_(any_delivery, ~any_pending, ~any_failed)
    return ~any_delivery


def list_events(
    connection: Connection,
    owner: str,
    filters: EventFilter,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """The owner's events, newest first, keyset-paged on (created_at, id)."""
    query = select(events).where(events.c.owner == owner)
    if filters.type:
        query = query.where(events.c.type == filters.type)
    if filters.status:
        query = query.where(_status_condition(filters.status))
    if after is not None:
        created_at, event_id = after
        query = query.where(
            or_(
                events.c.created_at < created_at,
                and_(events.c.created_at == created_at, events.c.id < event_id),
            )
        )
    query = query.order_by(events.c.created_at.desc(), events.c.id.desc()).limit(limit)
    return [dict(row._mapping) for row in connection.execute(query)]


def get_event(connection: Connection, owner: str, event_id: str) -> dict[str, Any] | None:
    row = connection.execute(
        select(events).where(events.c.id == event_id, events.c.owner == owner)
    ).first()
    return dict(row._mapping) if row else None


def deliveries_of(connection: Connection, event_ids: list[str]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {event_id: [] for event_id in event_ids}
    if not event_ids:
        return found
    rows = connection.execute(
        select(deliveries)
        .where(deliveries.c.event_id.in_(event_ids))
        .order_by(deliveries.c.event_id, deliveries.c.id)
    )
    for row in rows:
        found[row.event_id].append(dict(row._mapping))
    return found


def event_state(event_deliveries: list[dict[str, Any]]) -> str:
    states = {delivery["status"] for delivery in event_deliveries}
    if not states:
        return NOT_PUSHED
    if PENDING in states:
        return PENDING
    return FAILED if FAILED in states else DELIVERED


def reset_deliveries(connection: Connection, condition, now: datetime) -> int:
    """Queue deliveries again from their first attempt (to enabled subscriptions only).

    A lease is left alone: a delivery in flight is being sent right now, and
    freeing it would let another dispatcher send it too, at the same time.
    """
    enabled = select(subscriptions.c.id).where(subscriptions.c.disabled_at.is_(None))
    result = connection.execute(
        update(deliveries)
        .where(condition, deliveries.c.subscription_id.in_(enabled))
        .values(status=PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
    )
    return result.rowcount


def redeliver_event(
    connection: Connection, event: dict[str, Any], now: datetime, *, routed: bool
) -> int:
    """Every delivery of the event again, and one to each matching subscription it lacks.

    A `scope: own` subscription matches only when routing chose the key
    (`routed`); otherwise the key has the event only through `scope: all`.
    """
    reset = reset_deliveries(connection, deliveries.c.event_id == event["id"], now)
    have = set(
        connection.execute(
            select(deliveries.c.subscription_id).where(deliveries.c.event_id == event["id"])
        ).scalars()
    )
    query = select(subscriptions.c.id, subscriptions.c.event_types).where(
        subscriptions.c.owner == event["owner"], subscriptions.c.disabled_at.is_(None)
    )
    if not routed:
        query = query.where(subscriptions.c.scope == "all")
    rows = connection.execute(query)
    added = [
        new_delivery(event["id"], row.id, now)
        for row in rows
        if row.id not in have and wants(row.event_types, event["type"])
    ]
    insert_deliveries(connection, added)
    return reset + len(added)


def wants(event_types: list[str], event_type: str) -> bool:
    return "*" in event_types or event_type in event_types


def new_delivery(event_id: str, subscription_id: str, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "subscription_id": subscription_id,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def failed_deliveries(
    connection: Connection, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    query = (
        select(
            deliveries,
            events.c.type,
            events.c.owner,
            events.c.created_at.label("event_created_at"),
            subscriptions.c.url,
        )
        .join(events, events.c.id == deliveries.c.event_id)
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(deliveries.c.status == FAILED)
    )
    if since is not None:
        query = query.where(events.c.created_at >= since)
    query = query.order_by(events.c.created_at, deliveries.c.id).limit(limit)
    return [dict(row._mapping) for row in connection.execute(query)]


def replay_range(
    connection: Connection, since: datetime, until: datetime, now: datetime, only_failed: bool
) -> int:
    """Queue again every delivery of events created in [since, until)."""
    in_range = select(events.c.id).where(events.c.created_at >= since, events.c.created_at < until)
    condition = deliveries.c.event_id.in_(in_range)
    if only_failed:
        condition = and_(condition, deliveries.c.status == FAILED)
    return reset_deliveries(connection, condition, now)


@dataclass(frozen=True)
class Backlog:
    pending: int
    failed: int
    oldest_pending: datetime | None


def backlog(connection: Connection) -> Backlog:
    pending, oldest = connection.execute(
        select(func.count(), func.min(deliveries.c.created_at)).where(
            deliveries.c.status == PENDING
        )
    ).one()
    failed = connection.execute(
        select(func.count()).where(deliveries.c.status == FAILED)
    ).scalar_one()
    return Backlog(pending, failed, oldest)


# The dispatcher's queue ------------------------------------------------------


@dataclass
class Lane:
    """One subscription's claimed deliveries: sent one after another, in order."""

    subscription: dict[str, Any]
    token: str
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def _due(now: datetime):
    return and_(
        deliveries.c.status == PENDING,
        deliveries.c.next_attempt_at <= now,
        or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < now),
    )


def lanes_with_work(connection: Connection, now: datetime, exclude: set[str]) -> list[str]:
    """Subscriptions with a due delivery and none in flight anywhere.

    One index probe per enabled subscription, so a backlog of millions for one
    dead endpoint costs the others nothing.
    """
    in_flight = exists().where(
        deliveries.c.subscription_id == subscriptions.c.id,
        deliveries.c.status == PENDING,
        deliveries.c.locked_until >= now,
    )
    due = exists().where(deliveries.c.subscription_id == subscriptions.c.id, _due(now))
    query = select(subscriptions.c.id).where(subscriptions.c.disabled_at.is_(None), due, ~in_flight)
    return [sid for sid in connection.execute(query).scalars() if sid not in exclude]


def claim_lane(
    connection: Connection,
    subscription_id: str,
    token: str,
    now: datetime,
    lease_until: datetime,
    batch: int,
) -> Lane | None:
    """Lease up to `batch` due deliveries of one subscription, oldest first.

    On PostgreSQL the subscription row is locked (`FOR NO KEY UPDATE SKIP
    LOCKED`, which leaves the ingest path's foreign-key checks alone) while the
    lane is checked and leased, so two dispatchers never lease one lane at once.
    """
    postgres = connection.dialect.name == "postgresql"
    query = select(subscriptions).where(
        subscriptions.c.id == subscription_id, subscriptions.c.disabled_at.is_(None)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True, key_share=True)
    subscription = connection.execute(query).first()
    if subscription is None:
        return None
    busy = connection.execute(
        select(deliveries.c.id)
        .where(
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.status == PENDING,
            deliveries.c.locked_until >= now,
        )
        .limit(1)
    ).first()
    if busy is not None:
        return None
    query = (
        select(
            deliveries.c.id,
            deliveries.c.event_id,
            deliveries.c.attempts,
            events.c.body,
            events.c.type,
        )
        .join(events, events.c.id == deliveries.c.event_id)
        .where(deliveries.c.subscription_id == subscription_id, _due(now))
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(batch)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True, of=deliveries)
    claimed = [dict(row._mapping) for row in connection.execute(query)]
    if not claimed:
        return None
    connection.execute(
        update(deliveries)
        .where(deliveries.c.id.in_([row["id"] for row in claimed]))
        .values(locked_until=lease_until, locked_by=token)
    )
    return Lane(dict(subscription._mapping), token, claimed)


def settle_many(connection: Connection, token: str, outcomes: list[dict[str, Any]]) -> int:
    """Record many attempts' outcomes (each a dict with `id` and the new values) at once.

    Outcomes with the same columns go in one executemany; the count of rows
    still leased to `token`, i.e. recorded, is returned.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        values = {**outcome, "locked_until": None, "locked_by": None}
        key = tuple(sorted(name for name in values if name != "id"))
        groups.setdefault(key, []).append(
            {"b_id": values.pop("id"), **{f"v_{name}": value for name, value in values.items()}}
        )
    recorded = 0
    for columns, params in groups.items():
        statement = (
            update(deliveries)
            .where(
                deliveries.c.id == bindparam("b_id"),
                deliveries.c.locked_by == token,
                deliveries.c.status == PENDING,
            )
            .values({name: bindparam(f"v_{name}") for name in columns})
        )
        recorded += connection.execute(statement, params).rowcount
    return recorded


def release(connection: Connection, token: str, delivery_ids: list[int]) -> None:
    """Give back leased deliveries that were not attempted."""
    if delivery_ids:
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(delivery_ids), deliveries.c.locked_by == token)
            .values(locked_until=None, locked_by=None)
        )


def release_all_leases(connection: Connection) -> int:
    """Forget every lease: only for the single dispatcher of a SQLite database at start."""
    result = connection.execute(
        update(deliveries)
        .where(deliveries.c.locked_by.is_not(None))
        .values(locked_until=None, locked_by=None)
    )
    return result.rowcount


def events_for_message(connection: Connection, message_uuid: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(message_events)
        .where(message_events.c.message_uuid == message_uuid)
        .order_by(message_events.c.timestamp, message_events.c.id)
    )
    return [dict(row._mapping) for row in rows]
