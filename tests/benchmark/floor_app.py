"""The floor: the least the service's two hot paths can cost on this stack.

A plain WSGI app (no Flask) that does only what no implementation of the
contract may skip, with the service's own pieces:

- a webhook (`POST /webhooks/…`): the signature checked with `signature.verify`,
  the JSON read, and through the service's own group commit, durable
  (`synchronous=FULL`, or `synchronous_commit=on`) before its 200: an inbound
  message's row inserted into the service's own `messages` table (its indexes
  included), or a receipt kept in `message_events` and its message's status set;
- a send (`POST /send-sms`): the row committed durably before Vonage is called
  (a send that crashes must still be known), the RS256-signed call to Vonage
  (the simulator) on a kept-alive connection, then its outcome committed, 202.

Nothing else: no API key, no validation beyond a key lookup, no canonical
numbers, idempotency, opt-outs, limits, events, access line or metrics.
Served like the service (the Procfile's gunicorn settings), it bounds what a
Python service with this schema and durability reaches here: the gap between
it and the baseline is durability plus the schema (plus Vonage, for a send),
the gap between the service and it is the service's own work.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime

import jwt
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from app.store.dialect import utcnow
from app.store.driver import bind, insert, run
from app.store.engine import grouped_write, open_database
from app.store.models import Message, MessageEvent
from app.webhooks.signature import bearer_token, verify

MESSAGES = Message.__table__
EVENTS = MessageEvent.__table__
OK = b'{"duplicate":false,"status":"ok"}\n'
SEND_PATH = "/send-sms"


def create_app():
    secret = os.environ["VONAGE_SIGNATURE_SECRET"]
    max_age = int(os.environ.get("WEBHOOK_MAX_AGE_SECONDS") or 300)
    engine = open_database(os.environ["DATABASE_URL"], tempfile.gettempdir())

    send = _Sender(engine)

    def app(environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":  # /health
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if environ.get("PATH_INFO") == SEND_PATH:
            answer = send(json.loads(body))
            start_response(
                "202 Accepted",
                [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))],
            )
            return [answer]
        try:
            verify(
                bearer_token(environ.get("HTTP_AUTHORIZATION")),
                body,
                secrets=[secret],
                max_age=max_age,
            )
            payload = json.loads(body)
            write = _status(payload) if "status" in payload else _inbound(payload)
        except Exception:  # noqa: BLE001 - a floor, not a service: any refusal is a 401
            start_response("401 Unauthorized", [("Content-Length", "0")])
            return [b""]
        grouped_write(engine, write, batch_on_server=True)
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(OK)))]
        )
        return [OK]

    return app


def _inbound(payload: dict):
    """The message's row, once per `message_uuid`."""
    now = utcnow()
    row = {
        "id": str(uuid.uuid4()),
        "message_uuid": payload["message_uuid"],
        "direction": "inbound",
        "from_number": payload["from"],
        "to_number": payload["to"],
        "text": payload.get("text"),
        "status": "received",
        "channel": payload.get("channel") or "sms",
        "created_at": now,
        "updated_at": now,
    }
    return lambda connection: insert(
        connection, MESSAGES, row, "ON CONFLICT (message_uuid) DO NOTHING"
    )


def _status(payload: dict):
    """The receipt kept once (known message or not), and its message's status set."""
    stamp = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
    row = {
        "message_uuid": payload["message_uuid"],
        "status": payload["status"],
        "timestamp": stamp.astimezone(UTC).replace(tzinfo=None),
        "received_at": utcnow(),
    }

    def write(connection) -> None:
        stored = insert(
            connection,
            EVENTS,
            row,
            "ON CONFLICT (message_uuid, status, timestamp) DO NOTHING RETURNING id",
        ).fetchone()
        if stored is not None:
            run(
                connection,
                "UPDATE messages SET status = ?, updated_at = ? WHERE message_uuid = ?",
                (
                    row["status"],
                    bind(connection, MESSAGES, "updated_at", row["received_at"]),
                    row["message_uuid"],
                ),
            )

    return write


class _Sender:
    """A send as crash-consistent as the service's, and nothing more."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.url = f"https://{os.environ['VONAGE_API_HOST']}/v1/messages"
        self.application_id = os.environ["VONAGE_APPLICATION_ID"]
        with open(os.environ["VONAGE_PRIVATE_KEY_PATH"], "rb") as pem:
            self.key = load_pem_private_key(pem.read(), password=None)
        self.sender = os.environ["VONAGE_NUMBER"].removeprefix("+")
        self.local = threading.local()

    def __call__(self, request: dict) -> bytes:
        now = utcnow()
        row = {
            "id": str(uuid.uuid4()),
            "direction": "outbound",
            "from_number": self.sender,
            "to_number": request["to"].removeprefix("+"),
            "text": request["text"],
            "status": "pending",
            "channel": "sms",
            "created_at": now,
            "updated_at": now,
            "vonage_called_at": now,
        }
        grouped_write(self.engine, lambda connection: insert(connection, MESSAGES, row))
        issued_at = int(time.time())
        claims = {
            "application_id": self.application_id,
            "iat": issued_at,
            "jti": str(uuid.uuid4()),
            "exp": issued_at + 900,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256")
        response = self._session().post(
            self.url,
            json={
                "message_type": "text",
                "channel": "sms",
                "to": row["to_number"],
                "from": self.sender,
                "text": row["text"],
                "client_ref": row["id"],
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        message_uuid = response.json()["message_uuid"]
        grouped_write(
            self.engine,
            lambda connection: run(
                connection,
                "UPDATE messages SET status = 'submitted', message_uuid = ? WHERE id = ?",
                (message_uuid, row["id"]),
            ),
        )
        return json.dumps({"id": row["id"], "message_uuid": message_uuid}).encode()

    def _session(self) -> requests.Session:
        """One kept-alive connection per thread, as the service's pool gives each send."""
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session
