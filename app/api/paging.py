"""Pages of a list: their size, and the opaque cursor that continues one.

A cursor is the (created_at, id) of the last row served, keyset paging's
position; it is base64url JSON, opaque to callers and checked on the way back.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from app.errors import validation_problem
from app.sms import is_storable_text

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


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
