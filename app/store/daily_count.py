"""The daily send counter behind SEND_SMS_DAILY_LIMIT: one row per UTC day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, update

from app.store.dialect import upsert
from app.store.models import DailySendCount

daily_send_counts = DailySendCount.__table__


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
