"""Idempotency-Key claims: who holds a key, and the answer a repeat replays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from app.store.dialect import upsert, utcnow
from app.store.models import IdempotencyKey

idempotency_keys = IdempotencyKey.__table__

IDEMPOTENCY_TTL = timedelta(hours=24)
DEFAULT_HOLD = timedelta(seconds=60)


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
