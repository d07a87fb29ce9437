"""Keeping what cannot be interpreted, and trying it again after a fix."""

from __future__ import annotations

from typing import Any

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


def store_event(connection: Connection, event: Event) -> bool:
    return STORERS[event.kind](connection, event.parsed)


def reprocess(connection: Connection, row: dict[str, Any]) -> str:
    """Interpret a kept body again: `stored`, `duplicate`, or the reason it is still kept."""
    try:
        result = interpret(row["kind"], row["body"].encode())
    except NotJson:
        return row["reason"]
    if isinstance(result, DeadLetter):
        store.note_attempt(connection, row["id"], result.reason, result.detail)
        return result.reason
    outcome = "stored" if store_event(connection, result) else "duplicate"
    store.mark_reprocessed(connection, row["id"], outcome)
    return outcome
