"""Stored rows as the API's JSON: messages, their status events and timestamps.

The one shape for a message and an event, shared by the API, the CLI and the
events pushed to subscriptions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.status import as_message_error, public_status, rank


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
    priced = next((event for event in reversed(events) if event.get("price") is not None), {})
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
        "price": priced.get("price"),
        "currency": priced.get("currency"),
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
