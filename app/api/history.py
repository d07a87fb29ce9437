"""Shaping stored messages for the API, and the opaque paging cursor."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from app.errors import validation_problem
from app.sms import MAX_ADDRESS, NUMBER_HINT, InvalidNumber, canonical_address, is_storable_text
from app.status import as_message_error, public_status, rank

DIRECTIONS = ("inbound", "outbound")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") + "Z" if value else None


def message_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "message_uuid": row["message_uuid"],
        "direction": row["direction"],
        "channel": row.get("channel") or "sms",
        "message_type": row.get("message_type"),
        "media_url": row.get("media_url"),
        "from": row["from_number"],
        "to": row["to_number"],
        "text": row["text"],
        "status": public_status(row["status"]),
        "segments": row["segments"],
        "encoding": row["encoding"],
        "client_ref": row["client_ref"],
        "error": as_message_error(row["error"]),
        "price": row.get("price"),
        "currency": row.get("currency"),
        "network_code": row.get("network_code"),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def known_only_by_events(message_uuid: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A message seen only through status webhooks: what its events tell of it."""
    latest = max(events, key=lambda event: rank(event["status"]))
    row = {
        "id": None,
        "message_uuid": message_uuid,
        "direction": "outbound",
        "channel": latest.get("channel") or "sms",
        "from_number": None,
        "to_number": None,
        "text": None,
        "status": latest["status"],
        "segments": latest["segments"],
        "encoding": None,
        "client_ref": None,
        "error": latest["error"],
        "created_at": events[0]["received_at"],
        "updated_at": events[-1]["received_at"],
    }
    return message_json(row)


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": row["status"],
        "timestamp": iso(row["timestamp"]),
        "error": as_message_error(row["error"]),
        "price": row["price"],
        "currency": row["currency"],
        "segments": row["segments"],
        "network_code": row.get("network_code"),
        "received_at": iso(row["received_at"]),
    }


# Digits (three at least: short codes) with the separators people type; or an
# alphanumeric sender ID (letters, digits, spaces and a few marks).
_PHONE_LIKE = re.compile(r"(\+|00)?[0-9][0-9 ().-]{1,}[0-9]")
_SENDER_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9][A-Za-z0-9 &._-]*")


def number_filter(raw: str) -> str:
    """Any sender or recipient the service stores: a phone number (however written,
    canonicalised), a short code or an alphanumeric sender ID.

    A `+` in a query string arrives as a space, so `number=+33 6…` still works.
    """
    value = raw.strip()
    if len(value) <= 2 * MAX_ADDRESS and (
        _PHONE_LIKE.fullmatch(value) or _SENDER_ID.fullmatch(value)
    ):
        value = canonical_address(value)
        if len(value) <= MAX_ADDRESS:
            return value
    raise InvalidNumber(
        f"must be {NUMBER_HINT}, a short code or a sender ID of at most {MAX_ADDRESS} characters"
    )


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, message_id = json.loads(raw)
        if (
            not isinstance(message_id, str)
            or len(message_id) > 64
            or "\x00" in message_id
            or not is_storable_text(message_id)
        ):
            raise ValueError
        return datetime.fromisoformat(created_at), message_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise validation_problem(
            [{"field": "cursor", "message": "is not a cursor this service issued"}]
        ) from None
