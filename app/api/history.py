"""Shaping stored messages for the API, and the opaque paging cursor."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from app.errors import validation_problem

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
        "status": row["status"],
        "segments": row["segments"],
        "encoding": row["encoding"],
        "client_ref": row["client_ref"],
        "error": row["error"],
        "price": row.get("price"),
        "currency": row.get("currency"),
        "network_code": row.get("network_code"),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": row["status"],
        "timestamp": iso(row["timestamp"]),
        "error": row["error"],
        "price": row["price"],
        "currency": row["currency"],
        "segments": row["segments"],
        "network_code": row.get("network_code"),
        "received_at": iso(row["received_at"]),
    }


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, message_id = json.loads(raw)
        if not isinstance(message_id, str) or len(message_id) > 64 or "\x00" in message_id:
            raise ValueError
        return datetime.fromisoformat(created_at), message_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise validation_problem(
            [{"field": "cursor", "message": "is not a cursor this service issued"}]
        ) from None
