"""The one place that picks the dialect's INSERT … ON CONFLICT construct."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite


def upsert(connection: Connection, table):
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def utcnow() -> datetime:
    """Naive UTC: both backends store it the same way; rendered with a `Z`."""
    return datetime.now(UTC).replace(tzinfo=None)
