"""The daily send counter behind SEND_SMS_DAILY_LIMIT: one row per UTC day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, update

from app.store import driver
from app.store.models import DailySendCount

daily_send_counts = DailySendCount.__table__


def take_daily_slot(connection: Connection, day: date, limit: int) -> bool:
    """Count one send for `day` unless `limit` is reached; atomic on both backends."""
    params = [driver.bind(connection, daily_send_counts, "day", day), limit]
    return driver.run(connection, _TAKE_DAILY_SLOT, params).fetchone() is not None


# Every send runs it (plain SQL on the driver connection, see `app.store.driver`):
# rebuilt through Core it cost ~0.4 ms of CPU per send.
_TAKE_DAILY_SLOT = (
    "INSERT INTO daily_send_counts (day, count) VALUES (?, 1) ON CONFLICT (day) "
    "DO UPDATE SET count = daily_send_counts.count + 1 WHERE daily_send_counts.count < ? "
    "RETURNING count"
)


def give_back_daily_slot(connection: Connection, day: date) -> None:
    connection.execute(
        update(daily_send_counts)
        .where(daily_send_counts.c.day == day, daily_send_counts.c.count > 0)
        .values(count=daily_send_counts.c.count - 1)
    )
