"""Pure SMS rules: numbers, text clean-up, encoding and segments.

Nothing here imports Flask; every function is deterministic and cheap.
"""

from __future__ import annotations

import functools
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

# What a caller may type around the digits: `+33 6 12-34.56 (78)`, `0033…`.
_SEPARATORS = re.compile(r"[ \u00a0().\-]")
_DIGITS = re.compile(r"(\+|00)?[1-9][0-9]{6,16}")
# An E.164 number as Vonage writes it and the service stores and answers it (digits).
E164_DIGITS = r"[1-9][0-9]{6,14}"
# What a caller may write as `to`: `+33 6 12 34 56 78`, `0033…`, `+1 (415) 555-0100`.
NUMBER_INPUT_PATTERN = r"(\+|00)?[1-9][0-9 ().\u00a0-]{6,40}"
NUMBER_HINT = "a phone number in international form, such as +14155550100"


class InvalidNumber(ValueError):
    pass


def normalize_number(raw: str) -> str:
    """A valid number in canonical E.164 form as Vonage wants it: digits only, no `+`.

    Accepts `+14155550100`, `14155550100`, `0014155550100`, spaces, dashes, dots
    and parentheses, and a national trunk 0 kept after the country code
    (`+33 06 12 34 56 78`); rejects anything phonenumbers does not consider a
    valid number for its country. Every way of writing one number gives the
    same digits, so opt-outs, history and idempotency compare like with like.
    """
    if not isinstance(raw, str):
        raise InvalidNumber(f"must be {NUMBER_HINT}")
    compact = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw.strip(" \u00a0")))
    if not _DIGITS.fullmatch(compact):
        raise InvalidNumber(f"must be {NUMBER_HINT}")
    digits = compact.removeprefix("+") if compact.startswith("+") else compact
    digits = digits.removeprefix("00") if compact.startswith("00") else digits
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException as error:
        raise InvalidNumber(f"is not a valid number; it must be {NUMBER_HINT}") from error
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber(f"is not a valid number; it must be {NUMBER_HINT}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


MAX_ADDRESS = 32
_NUMERIC = re.compile(r"\+?[0-9]+")


@functools.lru_cache(maxsize=4096)
def canonical_address(raw: str) -> str:
    """A sender or recipient as stored: canonical digits for a valid phone number.

    Short codes, numbers phonenumbers does not know (Vonage's example ranges)
    and alphanumeric sender IDs are kept as given, less a leading `+` and the
    separators of a purely numeric value. Cached: phonenumbers takes ~0.1 ms a
    number, twice per inbound webhook, and the same numbers (ours on every
    inbound, a correspondent's on each reply) come back again and again.
    """
    try:
        return normalize_number(raw)
    except InvalidNumber:
        pass
    stripped = raw.strip()
    compact = _SEPARATORS.sub("", stripped)
    if _NUMERIC.fullmatch(compact):
        return compact.removeprefix("+")
    return stripped


def is_storable_text(value: str) -> bool:
    """False for a string with a lone surrogate (JSON allows `"\\ud800"`; UTF-8 does not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def mask_number(number: str | None) -> str:
    """Only the last four digits, for logs."""
    if not number:
        return ""
    digits = str(number)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def clean_text(raw: str) -> str:
    """NFC-normalised text without control characters; newlines kept.

    `\\r\\n` and lone `\\r` become `\\n`; surrounding whitespace is trimmed. A
    text of nothing but whitespace and invisible characters (zero-width spaces,
    joiners, BOMs, fillers) is empty; inside a text they stay (emoji need joiners).
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")
    text = unicodedata.normalize("NFC", kept).strip()
    return "" if all(_invisible(ch) for ch in text) else text


# Characters that show nothing even alone: fillers and variation selectors.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e") | {
    chr(code) for code in range(0xFE00, 0xFE10)
}


def _invisible(ch: str) -> bool:
    """Whitespace, format characters (zero-width space, joiners, BOM) and blanks."""
    return ch.isspace() or ch in _BLANKS or unicodedata.category(ch) == "Cf"


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
