"""What a send asks for, once the API (or the CLI) has parsed and checked it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from app.sms import Segmentation


@dataclass(frozen=True)
class SendRequest:
    to: str
    text: str
    client_ref: str | None
    segmentation: Segmentation

    def canonical(self) -> dict[str, Any]:
        """The request as sent, however it was written: what an Idempotency-Key is tied to."""
        return {"to": self.to, "text": self.text, "client_ref": self.client_ref}


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SendResult:
    """A send's answer: 202 with the message, fresh or replayed from its Idempotency-Key."""

    status: int
    body: dict[str, Any]
    replayed: bool = False
    #: Vonage calls this send made (None for a replay).
    attempts: int | None = None
