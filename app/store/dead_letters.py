"""Dead letters: signed webhook bodies kept raw until an operator reprocesses them."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection, select, update

from app.store.dialect import upsert, utcnow
from app.store.models import DeadLetter

dead_letters = DeadLetter.__table__


def keep(connection: Connection, *, kind: str, reason: str, detail: str, body: str) -> bool:
    """True when stored; False when the same body was already kept for this kind."""
    statement = (
        upsert(connection, dead_letters)
        .values(
            kind=kind,
            reason=reason,
            detail=detail[:1000],
            body=body,
            body_sha256=hashlib.sha256(body.encode()).hexdigest(),
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["kind", "body_sha256"])
        .returning(dead_letters.c.id)
    )
    return connection.execute(statement).first() is not None


def list_dead_letters(
    connection: Connection, *, pending_only: bool = True, limit: int = 100
) -> list[dict[str, Any]]:
    """Oldest first, so they are reviewed in the order Vonage sent them."""
    query = select(dead_letters)
    if pending_only:
        query = query.where(dead_letters.c.reprocessed_at.is_(None))
    query = query.order_by(dead_letters.c.received_at, dead_letters.c.id).limit(limit)
    return [dict(row._mapping) for row in connection.execute(query)]


def find(connection: Connection, ids: list[int]) -> list[dict[str, Any]]:
    query = select(dead_letters).where(dead_letters.c.id.in_(ids)).order_by(dead_letters.c.id)
    return [dict(row._mapping) for row in connection.execute(query)]


def mark_reprocessed(connection: Connection, dead_letter_id: int, outcome: str) -> None:
    connection.execute(
        update(dead_letters)
        .where(dead_letters.c.id == dead_letter_id)
        .values(reprocessed_at=utcnow(), outcome=outcome)
    )


def note_attempt(connection: Connection, dead_letter_id: int, reason: str, detail: str) -> None:
    """Still not interpretable: record why, as of this attempt."""
    connection.execute(
        update(dead_letters)
        .where(dead_letters.c.id == dead_letter_id)
        .values(reason=reason, detail=detail[:1000])
    )
