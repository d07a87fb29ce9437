"""What a correctly signed webhook body is: an event to store, or a dead letter.

Vonage does not retry a 4xx, so a signed event the service cannot interpret
(the older v0.1 shape, a shape the parser refuses, a status event posted to
the inbound URL, JSON with NaN) is not refused: it is kept raw for an operator
to review and reprocess. Only a body that is not UTF-8 JSON at all is refused
(400), as the contract says.

Pure: no Flask, no database; shared by the webhook routes and the operator CLI.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from app.errors import Problem
from app.webhooks import events

INBOUND = "inbound"
STATUS = "status"
KINDS = (INBOUND, STATUS)

# Dead-letter reasons: a fixed set, so they can label a metric.
WEBHOOK_VERSION = "webhook_version"
WRONG_KIND = "wrong_kind"
ODD_JSON = "odd_json"
UNKNOWN_SHAPE = "unknown_shape"
REASONS = (WEBHOOK_VERSION, WRONG_KIND, ODD_JSON, UNKNOWN_SHAPE)

MAX_INT_DIGITS = 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TOKEN = re.compile(
    r'[ \t\n\r]*(?:([{}\[\]:,])|("(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")'
    r"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null))"
)


class NotJson(Exception):
    """The body is not UTF-8 JSON at all: the one signed body refused (400)."""


class _OddJson(Exception):
    """JSON that Python reads but no standard parser would: NaN, Infinity, huge numbers."""


@dataclass(frozen=True)
class Event:
    kind: str
    parsed: dict[str, Any]


@dataclass(frozen=True)
class DeadLetter:
    kind: str
    reason: str
    detail: str


def _refuse_constant(name: str):
    raise _OddJson(f"{name} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _OddJson("a number has too many digits")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OddJson("a number is out of range")
    return value


def _without_lone_surrogates(value: Any) -> Any:
    """Half a surrogate pair (`"\\ud800"`, half an emoji) becomes U+FFFD: storable, still seen."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


def decode(body: bytes) -> Any:
    """The JSON value of `body`; NotJson if it is not UTF-8 JSON, _OddJson if non-standard."""
    try:
        # RFC 8259 lets a parser ignore a byte order mark; refusing it would lose the event.
        text = body.decode("utf-8-sig")
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
        # Only a `\u` escape can carry a lone surrogate (UTF-8 cannot encode one).
        return _without_lone_surrogates(value) if "\\u" in text else value
    except ValueError:
        raise NotJson("the body is not valid JSON") from None
    except RecursionError:
        # Valid JSON nested deeper than Python reads is odd, not lost: kept raw.
        if _well_formed(text):
            raise _OddJson("the JSON is nested too deeply to read") from None
        raise NotJson("the body is not valid JSON") from None


def _well_formed(text: str) -> bool:
    """Whether `text` is one JSON value (RFC 8259), checked without recursion."""
    stack: list[str] = []
    expect, position = "value", 0
    while match := _JSON_TOKEN.match(text, position):
        position = match.end()
        punct, string = match.group(1), match.group(2)
        closes = {"{": "}", "[": "]"}.get(stack[-1]) if stack else None
        if expect in ("value", "value or ]"):
            if punct == "]" and expect == "value or ]":
                stack.pop()
            elif punct in ("{", "["):
                stack.append(punct)
                expect = "key or }" if punct == "{" else "value or ]"
                continue
            elif punct:
                return False
        elif expect in ("key", "key or }"):
            if punct == "}" and expect == "key or }":
                stack.pop()
            elif string is not None:
                expect = "colon"
                continue
            else:
                return False
        elif expect == "colon":
            if punct != ":":
                return False
            expect = "value"
            continue
        elif expect == "comma or close":
            if punct == ",":
                expect = "key" if closes == "}" else "value"
                continue
            if punct != closes:
                return False
            stack.pop()
        else:  # a token after the whole value
            return False
        expect = "comma or close" if stack else "end"
    return expect == "end" and not text[position:].strip(" \t\n\r")


def _is_v0_1(payload: dict) -> bool:
    """v0.1 writes parties as objects (`{"type": "sms", "number": ...}`), content in `message`."""
    return any(isinstance(payload.get(name), dict) for name in ("from", "to", "message"))


def interpret(kind: str, body: bytes) -> Event | DeadLetter:
    """Classify a signed body posted to the `kind` URL. Raises NotJson for a non-JSON body."""
    try:
        payload = decode(body)
    except _OddJson as odd:
        return DeadLetter(kind, ODD_JSON, str(odd))
    if not isinstance(payload, dict):
        return DeadLetter(kind, ODD_JSON, "the body is not a JSON object")
    if _is_v0_1(payload):
        return DeadLetter(kind, WEBHOOK_VERSION, "webhook version v0.1; the service reads v1")
    if kind == INBOUND and "status" in payload:
        return DeadLetter(kind, WRONG_KIND, "a status event posted to the inbound URL")
    if kind == STATUS and "status" not in payload and "message_type" in payload:
        return DeadLetter(kind, WRONG_KIND, "an inbound message posted to the status URL")
    parse = events.parse_inbound if kind == INBOUND else events.parse_status
    try:
        return Event(kind, parse(payload))
    except Problem as problem:
        return DeadLetter(kind, UNKNOWN_SHAPE, problem.detail or problem.title)
