"""What tests share: the settings' constants and builders for requests, payloads and rows.

Plain functions and values, imported by unit tests, integration tests and the
benchmark alike (fixtures stay in the conftest files). Webhook payloads come
from `app.webhooks.payloads`, the shapes of Vonage's SDK fixtures that the
simulator and the CLI send too, so no test writes Vonage's shapes by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.config import Settings
from app.webhooks import payloads
from app.webhooks.signature import sign

REPO_ROOT = Path(__file__).resolve().parents[1]

# The service's settings in every test: unit apps and the processes integration tests start.
API_KEY = "test-api-key-0123456789abcdef"
OTHER_API_KEY = "other-api-key-0123456789abcdef"
SIGNATURE_SECRET = "test-signature-secret-0123456789abcdef"
APPLICATION_ID = "00000000-0000-4000-8000-000000000000"
VONAGE_NUMBER = "14155550199"
MESSAGES_URL = "https://api.nexmo.com/v1/messages"
# The recipient of most sends and the sender of most inbound messages.
TO = "+14155550100"
# Fixed webhook timestamps: a status event one second after the inbound time.
INBOUND_AT = "2026-11-26T12:00:00Z"
STATUS_AT = "2026-11-26T12:00:01Z"


def auth_headers(key: str = API_KEY, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def signed_headers(body: bytes, secret: str = SIGNATURE_SECRET, **claims: Any) -> dict[str, str]:
    """Headers Vonage sends with `body`: its signed JWT and the JSON content type."""
    token = sign(body, secret, **claims)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def accepted(vonage_api, message_uuid: str | None = None) -> None:
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


def inbound_payload(
    text_body: str = "Hello there", sender: str = TO.removeprefix("+"), **overrides: Any
) -> dict[str, Any]:
    """An inbound SMS to the service's number, as Vonage delivers it (fields overridable)."""
    payload = payloads.inbound_payload(sender=sender, recipient=VONAGE_NUMBER, text=text_body)
    payload["timestamp"] = INBOUND_AT
    payload.update(overrides)
    return payload


def status_payload(
    message_uuid: str, status: str, timestamp: str = STATUS_AT, **overrides: Any
) -> dict[str, Any]:
    """A status event for a message from the service's number to `TO` (fields overridable)."""
    payload = payloads.status_payload(
        message_uuid=message_uuid, status=status, to=TO, sender=VONAGE_NUMBER
    )
    payload["timestamp"] = timestamp
    payload.update(overrides)
    return payload


def count_rows(app, table: str) -> int:
    with app.extensions["db"].connect() as connection:
        return connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def stored_message(app, message_id):
    with app.extensions["db"].connect() as connection:
        row = connection.execute(
            text("SELECT * FROM messages WHERE id = :id"), {"id": message_id}
        ).first()
    return row._mapping if row else None


def free_port() -> int:
    """A port of 127.0.0.1 free right now, for a child process to listen on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**values: str) -> dict[str, str]:
    """The environment for a child process: every service setting blank unless given.

    Blank, not absent: python-dotenv never overrides a variable that is set, so a
    developer's `.env` can neither leak into the tests nor change what is measured.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VONAGE_", "SIM_"))}
    env.update({field.name.upper(): "" for field in dataclasses.fields(Settings)})
    env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1", REQUESTS_CA_BUNDLE="")
    env.update(values)
    return env
