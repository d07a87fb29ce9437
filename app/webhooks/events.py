"""What Vonage posts to the webhooks, checked and stored: the receiving side.

`parse_inbound` and `parse_status` turn a webhook body (Messages API, webhook
version v1) into a row, or raise a 422 validation problem naming each bad
field; `store_inbound` and `store_status` write that row, with any opt-out
change and outbox event, in the caller's transaction. The opposite direction,
building payloads as Vonage would send them, is app/webhooks/payloads.py.

Vonage posts every channel of an application (SMS, MMS, RCS, WhatsApp,
Messenger, Viber) to the same URLs. Each message keeps its `channel`; SMS
rules (segments, STOP/START) apply to SMS only, and the parties of other
channels (Messenger page ids, Viber ids) are kept as Vonage writes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from app import metrics
from app.channels import CHANNELS, MEDIA_TYPES, SMS
from app.errors import validation_problem
from app.events import outbox
from app.opt_outs import OPT_OUT, change_for
from app.sms import MAX_CLIENT_REF, canonical_address
from app.store import messages as store
from app.store import opt_outs

MAX_ID = 64
MAX_URL = 2048


def _string(payload: dict, name: str, errors: list, *, required: bool = True, limit: int = MAX_ID):
    value = payload.get(name)
    if value is None:
        if required:
            errors.append({"field": name, "message": "is required"})
        return None
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        errors.append({"field": name, "message": f"must be a string of 1 to {limit} characters"})
        return None
    return value


def _timestamp(payload: dict, errors: list, *, required: bool) -> datetime | None:
    value = payload.get("timestamp")
    if value is None and not required:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        errors.append({"field": "timestamp", "message": "must be an ISO 8601 time"})
        return None
    return parsed


MAX_SEGMENTS = 2**31 - 1


def _int(value: Any) -> int | None:
    """A whole count that fits the column, or None for anything else."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number <= MAX_SEGMENTS else None


def _text(value: Any, limit: int) -> str | None:
    """A free-form value as storable text: NUL removed (PostgreSQL refuses it), cut to fit."""
    if value is None:
        return None
    return str(value).replace("\x00", "")[:limit] or None


def _object(payload: dict, name: str) -> dict:
    value = payload.get(name)
    return value if isinstance(value, dict) else {}


def _channel(payload: dict, errors: list) -> str:
    """`sms` when absent (the v1 SMS shape has always carried it, older tests did not)."""
    channel = payload.get("channel", SMS)
    if channel not in CHANNELS:
        errors.append({"field": "channel", "message": f"must be one of {', '.join(CHANNELS)}"})
        return SMS
    return channel


def _media(payload: dict, message_type: str | None) -> tuple[str | None, str | None]:
    """The media URL and caption of an image/audio/video/file/vcard/sticker message."""
    if message_type not in MEDIA_TYPES:
        return None, None
    media = _object(payload, message_type)
    url = media.get("url")
    caption = media.get("caption") or media.get("name")
    return (
        _text(url, MAX_URL) if isinstance(url, str) else None,
        caption if isinstance(caption, str) else None,
    )


# Interactive answers (WhatsApp, RCS): what the user tapped is the message's text.
_CHOICE_TEXT = {"reply": "title", "button": "text"}


def _choice(payload: dict, message_type: str | None) -> str | None:
    """The title of a `reply` (a list or button row) or the text of a `button`."""
    field = _CHOICE_TEXT.get(message_type or "")
    value = _object(payload, message_type).get(field) if field else None
    return value if isinstance(value, str) else None


def parse_inbound(payload: dict) -> dict[str, Any]:
    errors: list = []
    message_uuid = _string(payload, "message_uuid", errors)
    channel = _channel(payload, errors)
    sender = _string(payload, "from", errors, limit=32)
    recipient = _string(payload, "to", errors, limit=32)
    message_type = _string(payload, "message_type", errors, required=False, limit=32)
    text = payload.get("text")
    if text is not None and not isinstance(text, str):
        errors.append({"field": "text", "message": "must be a string"})
    sms = _object(payload, "sms") if channel == SMS else {}
    usage = _object(payload, "usage")
    created = _timestamp(payload, errors, required=False)
    if errors:
        raise validation_problem(errors)
    media_url, caption = _media(payload, message_type)
    if text is None:
        text = caption if caption is not None else _choice(payload, message_type)
    is_sms = channel == SMS
    return {
        "id": str(uuid.uuid4()),
        "message_uuid": message_uuid,
        "channel": channel,
        "message_type": message_type or ("text" if is_sms else None),
        "from_number": canonical_address(sender) if is_sms else sender,
        "to_number": canonical_address(recipient) if is_sms else recipient,
        "text": text.replace("\x00", "") if text else text,
        "media_url": media_url,
        "segments": (_int(sms.get("num_messages")) or _int(sms.get("total_count")))
        if is_sms
        else None,
        "price": _text(usage.get("price"), 32),
        "currency": _text(usage.get("currency"), 8),
        "network_code": _text(_object(payload, "origin").get("network_code"), 16),
        "keyword": sms.get("keyword") if isinstance(sms.get("keyword"), str) else None,
        "sent_at": created,
    }


def parse_status(payload: dict) -> dict[str, Any]:
    errors: list = []
    message_uuid = _string(payload, "message_uuid", errors)
    status = _string(payload, "status", errors, limit=20)
    client_ref = _string(payload, "client_ref", errors, required=False, limit=MAX_CLIENT_REF)
    timestamp = _timestamp(payload, errors, required=True)
    error = payload.get("error")
    if error is not None and not isinstance(error, dict):
        errors.append({"field": "error", "message": "must be an object"})
    if errors:
        raise validation_problem(errors)
    usage = _object(payload, "usage")
    sms = _object(payload, "sms")
    channel = payload.get("channel")
    return {
        "message_uuid": message_uuid,
        "status": status,
        "timestamp": timestamp,
        "client_ref": client_ref,
        "error": error,
        "price": _text(usage.get("price"), 32),
        "currency": _text(usage.get("currency"), 8),
        "segments": _int(sms.get("count_total")) or _int(usage.get("segments")),
        "channel": _text(channel, 16) if isinstance(channel, str) else None,
        "network_code": _text(_object(payload, "destination").get("network_code"), 16),
    }


@dataclass(frozen=True)
class Stored:
    """What storing one event did; true when it was new. The caller counts it
    (`count()`) once the transaction holding it has committed."""

    new: bool
    #: (status label, effect) of a new status event.
    status_effect: tuple[str, str] | None = None
    #: `opt_out` / `opt_in` when an inbound text asked for it.
    opt_out_change: str | None = None

    def __bool__(self) -> bool:
        return self.new

    def count(self) -> None:
        if self.status_effect is not None:
            metrics.STATUS_EVENTS.labels(*self.status_effect).inc()
        if self.opt_out_change is not None:
            metrics.OPT_OUTS.labels(self.opt_out_change).inc()


def store_inbound(connection: Connection, message: dict[str, Any], *, routing_days: int) -> Stored:
    """Store once per `message_uuid`; act on STOP/START only the first time.

    Only an SMS opts anyone out: a WhatsApp "STOP" says nothing about the
    number's SMS.
    """
    row = {k: v for k, v in message.items() if k not in ("keyword", "sent_at")}
    since = outbox.reply_window_start(routing_days)
    receivers = store.insert_inbound(connection, row, since=since)
    if receivers is None:
        return Stored(False)
    if receivers:
        outbox.message_received(connection, row, since=since)
    change = record_opt_out_change(connection, message) if message["channel"] == SMS else None
    return Stored(True, opt_out_change=change)


def record_opt_out_change(connection: Connection, message: dict[str, Any]) -> str | None:
    """Opt the sender out or back in when the text says so (see app/opt_outs.py).

    The one place an opt-out changes. Vonage's `sms.keyword` (its first word,
    punctuation kept) is used only when there is no text, since the decision
    is made on the whole message. Returns the change, for the caller to count.
    """
    text = message["text"] if message["text"] is not None else message["keyword"]
    change = change_for(text)
    if change is None:
        return None
    number = message["from_number"]
    if change == OPT_OUT:
        changed = opt_outs.opt_out(connection, number, message["message_uuid"])
    else:
        changed = opt_outs.opt_in(connection, number)
    if changed:
        outbox.contact_changed(
            connection, number, opted_out=change == OPT_OUT, message_uuid=message["message_uuid"]
        )
    return change


def store_status(connection: Connection, event: dict[str, Any]) -> Stored:
    effect, receivers = store.insert_event_checking_receivers(connection, event)
    if effect is None:
        return Stored(False)
    if receivers:
        outbox.message_status(connection, event)
    status = event["status"] if event["status"] in metrics.KNOWN_STATUSES else "other"
    return Stored(True, status_effect=(status, effect))
