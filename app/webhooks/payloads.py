"""Webhook bodies built as Vonage would send them, signed and posted: the sending side.

`inbound_payload` and `status_payload` build an inbound message or a status
event (Messages API, webhook v1 and v0.1); `post_signed` delivers one with
Vonage's HS256 JWT over the exact body. Used by the local simulator, the
operator CLI (`flask webhook`) and the tests, so all speak the same shapes:
those of Vonage's own SDK fixtures (vonage-java-sdk InboundMessageTest,
MessageStatusTest) and the Messages API reference. What the app does with a
body it receives is app/webhooks/events.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from app.channels import MEDIA_TYPES, SMS
from app.sms import segment
from app.webhooks.signature import sign

INBOUND_PATH = "/webhooks/inbound"
STATUS_PATH = "/webhooks/status"
V1 = "v1"
V0_1 = "v0.1"
WEBHOOK_VERSIONS = (V1, V0_1)
# What the simulator reports for the parties' networks and an inbound's price.
NETWORK_CODE = "310260"
INBOUND_PRICE = {"currency": "EUR", "price": "0.0057"}


def vonage_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`, as Vonage writes it."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inbound_payload(
    *,
    sender: str,
    recipient: str,
    text: str | None,
    message_uuid: str | None = None,
    channel: str = SMS,
    message_type: str = "text",
    media_url: str | None = None,
    webhook_version: str = V1,
) -> dict[str, Any]:
    """An inbound message as the Messages API delivers it.

    An SMS carries its segment count as a carrier would bill it (`sms.num_messages`,
    `sms.total_count`), its `usage` and the sender's `origin.network_code`. Other
    channels carry their parties as Vonage writes them (a Messenger page-scoped
    id is not a phone number) and media under the message type's key.
    """
    message_uuid = message_uuid or str(uuid.uuid4())
    if webhook_version == V0_1:
        return _inbound_v0_1(sender, recipient, text or "", message_uuid, channel)
    is_sms = channel == SMS
    payload: dict[str, Any] = {
        "channel": channel,
        "message_uuid": message_uuid,
        "to": recipient.removeprefix("+") if is_sms else recipient,
        "from": sender.removeprefix("+") if is_sms else sender,
        "timestamp": vonage_timestamp(),
        "message_type": message_type,
    }
    if message_type == "text":
        payload["text"] = text or ""
    elif message_type in MEDIA_TYPES:
        media: dict[str, Any] = {"url": media_url or f"https://example.com/media/{message_uuid}"}
        if text:
            media["caption"] = text
        payload[message_type] = media
    if is_sms:
        words = (text or "").split()
        count = str(segment(text or "").segments)
        payload["sms"] = {
            "num_messages": count,
            "total_count": count,
            "keyword": words[0].upper() if words else "",
        }
        payload["usage"] = dict(INBOUND_PRICE)
        payload["origin"] = {"network_code": NETWORK_CODE}
    elif channel == "whatsapp":
        payload["profile"] = {"name": "Simulated User"}
    return payload


def _inbound_v0_1(
    sender: str, recipient: str, text: str, message_uuid: str, channel: str
) -> dict[str, Any]:
    """The older v0.1 shape: parties as objects, content under `message`."""
    return {
        "message_uuid": message_uuid,
        "to": {"type": channel, "number": recipient.removeprefix("+")},
        "from": {"type": channel, "number": sender.removeprefix("+")},
        "timestamp": vonage_timestamp(),
        "direction": "inbound",
        "message": {"content": {"type": "text", "text": text}},
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
    webhook_version: str = V1,
) -> dict[str, Any]:
    """A status event; `error_code` adds Vonage's `error` object.

    v1 (what the service pins on every send) carries `destination.network_code`
    and `sms.count_total`; v0.1 writes the parties as objects and the error as
    `{code, reason}`.
    """
    if webhook_version == V0_1:
        payload = {
            "message_uuid": message_uuid,
            "to": {"type": "sms", "number": to.removeprefix("+")},
            "from": {"type": "sms", "number": sender.removeprefix("+")},
            "timestamp": vonage_timestamp(),
            "status": status,
            "usage": {"currency": "EUR", "price": "0.0333"},
        }
        if client_ref is not None:
            payload["client_ref"] = client_ref
        if error_code is not None:
            payload["error"] = {"code": error_code, "reason": error_detail or "Error"}
        return payload
    payload: dict[str, Any] = {
        "message_uuid": message_uuid,
        "to": to.removeprefix("+"),
        "from": sender.removeprefix("+"),
        "timestamp": vonage_timestamp(),
        "status": status,
        "channel": "sms",
        "usage": {"currency": "EUR", "price": "0.0333"},
        "sms": {"count_total": str(segments)},
        "destination": {"network_code": NETWORK_CODE},
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


def post_signed(
    url: str,
    payload: dict[str, Any],
    secret: str,
    *,
    claims: dict[str, str] | None = None,
    **kwargs,
) -> requests.Response:
    """POST `payload` to `url` with `Authorization: Bearer <HS256 JWT>` over the exact body.

    `claims` adds what Vonage also signs: `api_key` and `application_id`.
    """
    body = json.dumps(payload).encode()
    token = sign(body, secret, **(claims or {}))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return requests.post(url, data=body, headers=headers, **kwargs)
