"""What a message list is filtered by: its directions, and a number however written."""

from __future__ import annotations

import re

from app.sms import MAX_ADDRESS, NUMBER_HINT, InvalidNumber, canonical_address

DIRECTIONS = ("inbound", "outbound")

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
