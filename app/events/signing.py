"""Standard Webhooks signatures (standardwebhooks.com), made by its reference library.

During a secret rotation each delivery carries two `v1,` signatures, new and
old, so a consumer can switch secrets without refusing a single event.
"""

from __future__ import annotations

import base64
import math
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(
    event_id: str, body: str, signing_secrets: list[str], now: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (the timestamp is the attempt's)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    signatures = [Webhook(secret).sign(event_id, moment, body) for secret in signing_secrets]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(math.floor(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
