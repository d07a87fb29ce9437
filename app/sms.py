"""Pure SMS rules: numbers, text clean-up, encoding and segments, keywords.

Nothing here imports Flask; every function is deterministic and cheap.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

# GSM 03.38 basic character set (one septet each) and extension table (two).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})

# An E.164 number as Vonage writes it (digits), and as callers may (an optional `+`).
E164_DIGITS = r"[1-9][0-9]{6,14}"
E164_PATTERN = r"\+?" + E164_DIGITS
_E164 = re.compile(E164_PATTERN)


class InvalidNumber(ValueError):
    pass


def normalize_number(raw: str) -> str:
    """A valid E.164 number as Vonage wants it: digits only, no `+`.

    Accepts `+14155550100` or `14155550100`; rejects anything else, including
    numbers that are well formed but not valid for their country.
    """
    if not isinstance(raw, str) or not _E164.fullmatch(raw):
        raise InvalidNumber("must be an E.164 number such as +14155550100")
    digits = raw.removeprefix("+")
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException as error:
        raise InvalidNumber("is not a valid phone number") from error
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber("is not a valid phone number")
    return digits


def mask_number(number: str | None) -> str:
    """Only the last four digits, for logs."""
    if not number:
        return ""
    digits = str(number)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def clean_text(raw: str) -> str:
    """NFC-normalised text without control characters; newlines kept.

    `\\r\\n` and lone `\\r` become `\\n`; surrounding whitespace is trimmed.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")
    return unicodedata.normalize("NFC", kept).strip()


@dataclass(frozen=True)
class Segmentation:
    encoding: str
    segments: int


def _units(text: str, encoding: str) -> list[int]:
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def segment(text: str) -> Segmentation:
    """Encoding and the number of segments a carrier bills for `text`.

    GSM-7 when every character is in the GSM 03.38 tables (extension characters
    take two septets), else UCS-2 (characters beyond the BMP take two code units).
    A multipart message carries a header, so parts hold 153 septets or 67 units,
    and an escape pair or surrogate pair is never split across two parts.
    """
    is_gsm = all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)
    encoding = GSM7 if is_gsm else UCS2
    single, part = _LIMITS[encoding]
    units = _units(text, encoding)
    if sum(units) <= single:
        return Segmentation(encoding, 1)
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return Segmentation(encoding, segments)


def keyword(text: str | None) -> str | None:
    """`"opt_out"`, `"opt_in"` or None for an inbound message's text."""
    word = (text or "").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "opt_out"
    if word in OPT_IN_KEYWORDS:
        return "opt_in"
    return None
