"""The opt-out list: numbers that texted STOP (or equivalent) and must not be sent to."""

from __future__ import annotations

from sqlalchemy import Connection, delete

from app.store import driver
from app.store.dialect import upsert, utcnow
from app.store.models import OptOut

opt_outs = OptOut.__table__


def is_opted_out(connection: Connection, number: str) -> bool:
    return driver.run(connection, _OPTED_OUT, [number]).fetchone() is not None


# Every send asks: plain SQL on the driver connection (see `app.store.driver`).
_OPTED_OUT = "SELECT number FROM opt_outs WHERE number = ?"


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
