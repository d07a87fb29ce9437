"""Shared test constants and builders, imported by tests (fixtures stay in conftest.py)."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from tests.conftest import MESSAGES_URL

TO = "+14155550100"


def accepted(vonage_api, message_uuid=None):
    """Vonage accepts: a fixed uuid once, or a fresh uuid for every call."""
    if message_uuid:
        vonage_api.post(MESSAGES_URL, json={"message_uuid": message_uuid}, status=202)
        return
    vonage_api.add_callback(
        "POST",
        MESSAGES_URL,
        callback=lambda request: (202, {}, json.dumps({"message_uuid": str(uuid.uuid4())})),
        content_type="application/json",
    )


def stored_message(app, message_id):
    with app.extensions["db"].connect() as connection:
        row = connection.execute(
            text("SELECT * FROM messages WHERE id = :id"), {"id": message_id}
        ).first()
    return row._mapping if row else None
