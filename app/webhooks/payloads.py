"""Vonage webhook payloads (Messages API, webhook v1) and their signed delivery.

Shared by the operator CLI and the local simulator, so both speak the same shapes.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from app.webhooks.signature import sign

INBOUND_PATH = "/webhooks/inbound"
STATUS_PATH = "/webhooks/status"


def vonage_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`, as Vonage writes it."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inbound_payload(
    *, sender: str, recipient: str, text: str, message_uuid: str | None = None
) -> dict[str, Any]:
    """An inbound SMS as the Messages API (webhook v1) delivers it."""
    words = text.split()
    return {
        "channel": "sms",
        "message_uuid": message_uuid or str(uuid.uuid4()),
        "to": recipient.removeprefix("+"),
        "from": sender.removeprefix("+"),
        "timestamp": vonage_timestamp(),
        "text": text,
        "message_type": "text",
        "sms": {"num_messages": "1", "keyword": words[0].upper() if words else ""},
    }


def status_payload(
    *,
    message_uuid: str,
    status: str,
    to: str,
    sender: str,
    client_ref: str | None = None,
    error_code: int | None = None,
    error_detail: str | None = None,
    segments: int = 1,
) -> dict[str, Any]:
    """A status event (webhook v1); `error_code` adds Vonage's `error` object."""
    payload: dict[str, Any] = {
        "message_uuid": message_uuid,
        "to": to.removeprefix("+"),
        "from": sender.removeprefix("+"),
        "timestamp": vonage_timestamp(),
        "status": status,
        "channel": "sms",
        "usage": {"currency": "EUR", "price": "0.0333"},
        "sms": {"count_total": str(segments)},
    }
    if client_ref is not None:
        payload["client_ref"] = client_ref
    if error_code is not None:
        payload["error"] = {
            "type": f"https://developer.vonage.com/api-errors/messages#{error_code}",
            "title": str(error_code),
            "detail": error_detail or f"Error Code {error_code}",
            "instance": str(uuid.uuid4()),
        }
    return payload


def post_signed(url: str, payload: dict[str, Any], secret: str, **kwargs) -> requests.Response:
    """POST `payload` to `url` with `Authorization: Bearer <HS256 JWT>` over the exact body."""
    body = json.dumps(payload).encode()
    headers = {"Authorization": f"Bearer {sign(body, secret)}", "Content-Type": "application/json"}
    return requests.post(url, data=body, headers=headers, **kwargs)
