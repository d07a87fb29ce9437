"""Keeping what cannot be interpreted, and trying it again after a fix."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection

from app.store import dead_letters as store
from app.webhooks import events
from app.webhooks.interpret import INBOUND, DeadLetter, Event, NotJson, interpret

STORERS = {INBOUND: events.store_inbound, "status": events.store_status}


def keep(connection: Connection, letter: DeadLetter, body: bytes) -> bool:
    """Keep the raw body (UTF-8 text: `interpret` refused anything else)."""
    return store.keep(
        connection,
        kind=letter.kind,
        reason=letter.reason,
        detail=letter.detail,
        body=body.decode("utf-8"),
    )


def store_event(connection: Connection, event: Event) -> events.Stored:
    return STORERS[event.kind](connection, event.parsed)


class Reprocessed(NamedTuple):
    #: `stored`, `duplicate`, or the reason it is still kept.
    outcome: str
    #: What storing did, to count once committed (None while still kept).
    stored: events.Stored | None = None


def reprocess(connection: Connection, row: dict[str, Any]) -> Reprocessed:
    """Interpret a kept body again, and store it if it now reads."""
    try:
        result = interpret(row["kind"], row["body"].encode())
    except NotJson:
        return Reprocessed(row["reason"])
    if isinstance(result, DeadLetter):
        store.note_attempt(connection, row["id"], result.reason, result.detail)
        return Reprocessed(result.reason)
    stored = store_event(connection, result)
    outcome = "stored" if stored else "duplicate"
    store.mark_reprocessed(connection, row["id"], outcome)
    return Reprocessed(outcome, stored)
