"""Pre-generated requests: every one distinct, every webhook validly signed.

Requests are written as raw HTTP/1.1 bytes, NUL-separated, for `replay.lua`.
Webhook tokens are made by `app.webhooks.signature.sign` (HS256, `payload_hash`
over the exact body, `iat` = the time of generation), so they are generated
right before each run and stay far inside WEBHOOK_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.webhooks.payloads import inbound_payload, status_payload
from app.webhooks.signature import sign

SERVICE_NUMBER = "14155550199"
# 415-555-01xx pass phonenumbers validation; the simulator treats 0110-0112 specially.
SEND_NUMBERS = [f"+141555501{n:02d}" for n in range(100) if n not in (10, 11, 12, 99)]
TEXTS = ["Hello!", "Can we move it to 3pm?", "Yes", "Thanks, see you tomorrow", "Where are you?"]


@dataclass
class RequestBatch:
    path: Path
    count: int
    oldest_iat: float | None = None
    # Outbound messages the status events refer to: stored before the run.
    status_targets: list[dict[str, Any]] = field(default_factory=list)


def raw_request(method: str, target: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _phone(rng: random.Random) -> str:
    return f"1415555{rng.randrange(10000):04d}"


def _signed(path: str, payload: dict, port: int, secret: str, issued_at: float) -> bytes:
    body = json.dumps(payload).encode()
    headers = {
        "Authorization": f"Bearer {sign(body, secret, issued_at=issued_at)}",
        "Content-Type": "application/json",
    }
    return raw_request("POST", path, port, headers, body)


def webhook_requests(
    out: Path, *, kinds: tuple[str, ...], count: int, port: int, secret: str, seed: int
) -> RequestBatch:
    """`count` signed webhooks cycling through `kinds` (`inbound`, `status`)."""
    rng = random.Random(seed)
    issued_at = time.time()
    batch = RequestBatch(out, count, oldest_iat=int(issued_at))
    sent_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    with open(out, "wb") as file:
        for index in range(count):
            kind = kinds[index % len(kinds)]
            if kind == "inbound":
                payload = inbound_payload(
                    sender=_phone(rng),
                    recipient=SERVICE_NUMBER,
                    text=rng.choice(TEXTS),
                    message_uuid=str(uuid.uuid4()),
                )
                request = _signed("/webhooks/inbound", payload, port, secret, issued_at)
            else:
                message_id, message_uuid, number = str(uuid.uuid4()), str(uuid.uuid4()), _phone(rng)
                batch.status_targets.append(
                    {
                        "id": message_id,
                        "message_uuid": message_uuid,
                        "direction": "outbound",
                        "from_number": SERVICE_NUMBER,
                        "to_number": number,
                        "text": rng.choice(TEXTS),
                        "status": "submitted",
                        "created_at": sent_at,
                    }
                )
                payload = status_payload(
                    message_uuid=message_uuid,
                    status="delivered",
                    to=number,
                    sender=SERVICE_NUMBER,
                    client_ref=message_id,
                )
                request = _signed("/webhooks/status", payload, port, secret, issued_at)
            file.write(request + b"\0")
    return batch


def send_requests(out: Path, *, count: int, port: int, api_key: str, seed: int) -> RequestBatch:
    """`count` distinct POST /send-sms calls to varied valid numbers."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    with open(out, "wb") as file:
        for index in range(count):
            body = json.dumps(
                {"to": rng.choice(SEND_NUMBERS), "text": f"Benchmark message {seed}-{index}"}
            ).encode()
            file.write(raw_request("POST", "/send-sms", port, headers, body) + b"\0")
    return RequestBatch(out, count)
