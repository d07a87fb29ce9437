"""Opt-outs, idempotency keys and the daily send counter: the send path's checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select, update

from app.store.dialect import upsert, utcnow
from app.store.models import DailySendCount, IdempotencyKey, OptOut

opt_outs = OptOut.__table__
idempotency_keys = IdempotencyKey.__table__
daily_send_counts = DailySendCount.__table__

IDEMPOTENCY_TTL = timedelta(hours=24)
DEFAULT_HOLD = timedelta(seconds=60)


def is_opted_out(connection: Connection, number: str) -> bool:
    return connection.execute(_OPTED_OUT, {"number": number}).first() is not None


# Built once: every send asks, and a rebuilt select is keyed again each time.
_OPTED_OUT = select(opt_outs.c.number).where(opt_outs.c.number == bindparam("number"))


def opt_out(connection: Connection, number: str, message_uuid: str | None) -> bool:
    """Opt `number` out; False when it already was (nothing changed)."""
    statement = (
        upsert(connection, opt_outs)
        .values(number=number, opted_out_at=utcnow(), message_uuid=message_uuid)
        .on_conflict_do_nothing(index_elements=["number"])
        .returning(opt_outs.c.number)
    )
    # RETURNING, not rowcount: psycopg reports no rowcount for this insert.
    return connection.execute(statement).first() is not None


def opt_in(connection: Connection, number: str) -> bool:
    """Opt `number` back in; False when it was not opted out (nothing changed)."""
    result = connection.execute(delete(opt_outs).where(opt_outs.c.number == number))
    return result.rowcount > 0


def take_daily_slot(connection: Connection, day: date, limit: int) -> bool:
    """Count one send for `day` unless `limit` is reached; atomic on both backends."""
    statement = (
        upsert(connection, daily_send_counts)
        .values(day=day, count=1)
        .on_conflict_do_update(
            index_elements=["day"],
            set_={"count": daily_send_counts.c.count + 1},
            where=daily_send_counts.c.count < limit,
        )
        .returning(daily_send_counts.c.count)
    )
    return connection.execute(statement).first() is not None


def give_back_daily_slot(connection: Connection, day: date) -> None:
    connection.execute(
        update(daily_send_counts)
        .where(daily_send_counts.c.day == day, daily_send_counts.c.count > 0)
        .values(count=daily_send_counts.c.count - 1)
    )


@dataclass(frozen=True)
class IdempotentReplay:
    """What a repeated Idempotency-Key finds: a stored answer, or none yet.

    With no answer, the key is in flight until `in_flight_until`; past it the
    request that held it can no longer be alive, and `message_id` (if it got
    that far) names the message it created.
    """

    request_hash: str
    response_status: int | None
    response_body: str | None
    message_id: str | None = None
    in_flight_until: datetime | None = None

    def abandoned(self, now: datetime) -> bool:
        return (
            self.response_status is None
            and self.in_flight_until is not None
            and self.in_flight_until <= now
        )


def claim_idempotency_key(
    connection: Connection,
    owner: str,
    key: str,
    request_hash: str,
    hold: timedelta = DEFAULT_HOLD,
) -> IdempotentReplay | None:
    """None when this request now owns the key (for `hold`); else what the first request left.

    A key abandoned before its request created a message (nothing can have been
    sent) is taken over, as if it had never been claimed.
    """
    now = utcnow()
    purge_expired_idempotency_keys(connection, now)
    inserted = connection.execute(
        upsert(connection, idempotency_keys)
        .values(
            owner=owner,
            key=key,
            request_hash=request_hash,
            created_at=now,
            in_flight_until=now + hold,
        )
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(idempotency_keys.c.key)
    ).first()
    if inserted is not None:
        return None
    taken_over = connection.execute(
        update(idempotency_keys)
        .where(
            _the_key(owner, key),
            idempotency_keys.c.request_hash == request_hash,
            idempotency_keys.c.response_status.is_(None),
            idempotency_keys.c.message_id.is_(None),
            idempotency_keys.c.in_flight_until <= now,
        )
        .values(created_at=now, in_flight_until=now + hold)
    )
    if taken_over.rowcount:
        return None
    row = connection.execute(
        select(
            idempotency_keys.c.request_hash,
            idempotency_keys.c.response_status,
            idempotency_keys.c.response_body,
            idempotency_keys.c.message_id,
            idempotency_keys.c.in_flight_until,
        ).where(_the_key(owner, key))
    ).one()
    return IdempotentReplay(
        row.request_hash,
        row.response_status,
        row.response_body,
        row.message_id,
        row.in_flight_until,
    )


def link_idempotency_key(connection: Connection, owner: str, key: str, message_id: str) -> bool:
    """Record the message a claim created (with its row); False when the claim has
    lapsed, so a request that outlived its hold never goes on to send."""
    result = connection.execute(
        update(idempotency_keys)
        .where(
            _the_key(owner, key),
            idempotency_keys.c.message_id.is_(None),
            idempotency_keys.c.response_status.is_(None),
            idempotency_keys.c.in_flight_until > utcnow(),
        )
        .values(message_id=message_id)
    )
    return result.rowcount == 1


def _the_key(owner: str, key: str):
    return (idempotency_keys.c.owner == owner) & (idempotency_keys.c.key == key)


def complete_idempotency_key(
    connection: Connection, owner: str, key: str, status: int, body: str
) -> None:
    connection.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.owner == owner, idempotency_keys.c.key == key)
        .values(response_status=status, response_body=body)
    )


def release_idempotency_key(connection: Connection, owner: str, key: str) -> None:
    """Forget a key whose request changed nothing, so the caller may retry it."""
    connection.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.owner == owner,
            idempotency_keys.c.key == key,
            idempotency_keys.c.response_status.is_(None),
        )
    )


def purge_expired_idempotency_keys(connection: Connection, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - IDEMPOTENCY_TTL
    result = connection.execute(
        delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
    )
    return result.rowcount
