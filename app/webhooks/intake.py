"""A verified, interpreted webhook event stored, then counted, then described.

The one step both ways into the service take: the blueprint's views
(app/webhooks/routes.py) and the lean WSGI path that answers the common case
without Flask's request stack (app/webhooks/fast_path.py). Flask-free.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from app import metrics
from app.sms import mask_number
from app.store.engine import grouped_write
from app.webhooks import events, interpret


def store(engine: Engine, event: interpret.Event, *, routing_days: int) -> tuple[bool, dict]:
    """Store `event` durably and count it once committed: (whether it was new, the
    fields of its access line). A storage failure is raised as SQLAlchemy's.

    Webhooks arrive in bursts: they share commits (one fsync for the batch), and
    each returns only once the commit holding it is durable.
    """
    parsed = event.parsed
    if event.kind == interpret.INBOUND:
        stored = grouped_write(
            engine,
            lambda connection: events.store_inbound(connection, parsed, routing_days=routing_days),
            batch_on_server=True,
        )
        fields: dict[str, Any] = {
            "message_uuid": parsed["message_uuid"],
            "channel": parsed["channel"],
            "sender": mask_number(parsed["from_number"]),
        }
    else:
        stored = grouped_write(
            engine, lambda connection: events.store_status(connection, parsed), batch_on_server=True
        )
        fields = {"message_uuid": parsed["message_uuid"], "message_status": parsed["status"]}
    stored.count()
    metrics.WEBHOOKS.labels(event.kind, "stored" if stored else "duplicate").inc()
    fields["duplicate"] = not stored
    return bool(stored), fields


def answer(new: bool) -> dict[str, Any]:
    """The 200 body for a stored (or already stored) event."""
    return {"status": "ok", "duplicate": not new}


def answer_bytes(new: bool) -> bytes:
    """`answer` as Flask's `jsonify` writes it (sorted keys, compact, a final newline)."""
    return json.dumps(answer(new), sort_keys=True, separators=(",", ":")).encode() + b"\n"
