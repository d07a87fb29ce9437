"""Parsing and validation of API input into plain values, or a Problem."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from flask import Request

from app.destinations import refusal
from app.errors import Problem, validation_problem
from app.sending import SendRequest
from app.sms import (
    MAX_CLIENT_REF,
    InvalidNumber,
    clean_text,
    is_storable_text,
    normalize_number,
    segment,
)

MAX_IDEMPOTENCY_KEY = 255
SEND_FIELDS = frozenset({"to", "text", "client_ref"})
UNPAIRED_SURROGATE = "must be valid Unicode (it holds an unpaired surrogate such as \\ud800)"


JSON_MEDIA_TYPE = "application/json"


def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 415 unless `application/json` (UTF-8), 400 if not an object.

    Only the media type the OpenAPI document lists: `+json` types and other
    charsets would be accepted here but refused by clients generated from it.
    """
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != JSON_MEDIA_TYPE or charset not in ("utf-8", "utf8"):
        raise Problem(
            415,
            "Unsupported Media Type",
            detail="send Content-Type: application/json (UTF-8)",
        )
    raw = request.get_data(cache=True)
    try:
        # Decoded here: json.loads(bytes) would guess UTF-16 or UTF-32 from the bytes.
        # A UTF-8 byte order mark is tolerated (RFC 8259 lets a parser ignore it).
        body = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Problem(400, "Bad Request", detail="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "Bad Request", detail="the body must be a JSON object")
    return body


def parse_send(
    body: dict[str, Any],
    max_length: int,
    allowed_countries: Collection[str] = (),
    blocked_countries: Collection[str] = (),
) -> SendRequest:
    """The request, or a 422: validation errors first, then a refused destination."""
    errors: list[dict[str, str]] = []
    for name in sorted(set(body) - SEND_FIELDS):
        errors.append({"field": name, "message": "is not a known field"})

    to = body.get("to")
    number = None
    if to is None:
        errors.append({"field": "to", "message": "is required"})
    elif not isinstance(to, str):
        errors.append({"field": "to", "message": "must be a string"})
    else:
        try:
            number = normalize_number(to)
        except InvalidNumber as error:
            errors.append({"field": "to", "message": str(error)})

    raw_text = body.get("text")
    text = None
    if raw_text is None:
        errors.append({"field": "text", "message": "is required"})
    elif not isinstance(raw_text, str):
        errors.append({"field": "text", "message": "must be a string"})
    elif not is_storable_text(raw_text):
        errors.append({"field": "text", "message": UNPAIRED_SURROGATE})
    else:
        text = clean_text(raw_text)
        if not text:
            errors.append(
                {
                    "field": "text",
                    "message": "is empty after clean-up (only spaces, control or invisible "
                    "characters)",
                }
            )
        elif len(text) > max_length:
            errors.append(
                {
                    "field": "text",
                    "message": f"is {len(text)} characters; the limit is {max_length}",
                }
            )

    client_ref = body.get("client_ref")
    errors.extend(_client_ref_errors(client_ref))

    if errors:
        raise validation_problem(errors)
    refuse_destination(number, allowed_countries, blocked_countries)
    return SendRequest(number, text, client_ref, segment(text))


def _client_ref_errors(client_ref: Any) -> list[dict[str, str]]:
    if client_ref is None:
        return []
    if not isinstance(client_ref, str):
        message = "must be a string"
    elif len(client_ref) > MAX_CLIENT_REF:
        message = f"is longer than {MAX_CLIENT_REF}"
    elif "\x00" in client_ref:
        message = "must not contain NUL"
    elif not is_storable_text(client_ref):
        message = UNPAIRED_SURROGATE
    else:
        return []
    return [{"field": "client_ref", "message": message}]


class DestinationNotAllowed(Problem):
    """422 with its own problem type: a number the service does not send to."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            422, "Destination not allowed", type="destination-not-allowed", detail=reason
        )


def refuse_destination(number: str, allowed: Collection[str], blocked: Collection[str]) -> None:
    reason = refusal(number, allowed, blocked)
    if reason is not None:
        raise DestinationNotAllowed(reason)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise validation_problem(
            [
                {
                    "field": "Idempotency-Key",
                    "message": f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
                }
            ]
        )
    return key
