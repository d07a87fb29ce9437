"""The readiness probe's one tiny write."""

from __future__ import annotations

from sqlalchemy import Connection

from app.store.dialect import upsert, utcnow
from app.store.models import ReadinessProbe

probes = ReadinessProbe.__table__


def touch(connection: Connection, name: str = "ready") -> None:
    """Rewrite one row: proves the database takes (and commits) a write."""
    now = utcnow()
    connection.execute(
        upsert(connection, probes)
        .values(name=name, probed_at=now)
        .on_conflict_do_update(index_elements=["name"], set_={"probed_at": now})
    )
