"""Verification of Vonage's signed webhooks (HS256 JWT + payload hash).

Pure: no Flask, no clock of its own unless given, so it is tested with fixed vectors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Sequence

import jwt

FUTURE_SKEW_SECONDS = 60
MAX_TOKEN_LENGTH = 4096
_JWT_FORM = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class MissingSignature(Exception):
    """No Authorization header at all: Vonage may rarely send one unsigned; 503 makes it retry."""


class InvalidSignature(Exception):
    """A token that is present but wrong: 401, and Vonage will not send it again."""


def bearer_token(header: str | None) -> str:
    if header is None:
        raise MissingSignature("no Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidSignature("Authorization is not a bearer token")
    return token.strip()


def check_form(token: str) -> None:
    """Refuse what cannot be a Vonage token (three base64url parts, an HS256 header)
    before the body is read, so a bogus caller is not even worth the read."""
    if len(token) > MAX_TOKEN_LENGTH or not _JWT_FORM.fullmatch(token):
        raise InvalidSignature("the token is not a JWT")
    header = _json_segment(token.partition(".")[0])
    if header is None:
        raise InvalidSignature("the token's header is not readable")
    if header.get("alg") != "HS256":
        raise InvalidSignature("the token is not signed with HS256")


# Vonage's tokens carry only these; anything else goes through PyJWT's full decode.
_PLAIN_HEADER = frozenset({"alg", "typ"})
_CHECKED_CLAIMS = frozenset({"exp", "nbf", "aud", "sub"})


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_segment(segment: str) -> dict | None:
    try:
        value = json.loads(_b64(segment))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


def _pinned_hs256(token: str, secrets: Sequence[str]) -> dict | None:
    """The claims when one of `secrets` signs `token` with HS256, else None.

    HMAC-SHA256 over the signing input and a constant-time compare: what PyJWT's
    generic decode does for HS256, without its key-format probes (~4x cheaper).
    Tokens with other header fields or claims PyJWT validates (exp, nbf, aud, sub)
    are handed back to PyJWT with the secret that signed them.
    """
    signing_input, _, signature = token.rpartition(".")
    header_segment, _, payload_segment = signing_input.partition(".")
    header = _json_segment(header_segment)
    if header is None or header.get("alg") != "HS256":
        raise InvalidSignature("invalid token: DecodeError")
    try:
        given = _b64(signature)
    except (ValueError, binascii.Error):
        raise InvalidSignature("invalid token: DecodeError") from None
    message = signing_input.encode()
    for secret in secrets:
        if not secret:
            continue
        digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        if hmac.compare_digest(digest, given):
            break
    else:
        return None
    claims = _json_segment(payload_segment)
    if claims is None:
        raise InvalidSignature("invalid token: DecodeError")
    if header.keys() - _PLAIN_HEADER or claims.keys() & _CHECKED_CLAIMS:
        claims = _pyjwt_decode(token, secret)
    elif claims.get("iat") is None:
        raise InvalidSignature("invalid token: MissingRequiredClaimError")
    elif "jti" in claims and not isinstance(claims["jti"], str):
        raise InvalidSignature("invalid token: InvalidJTIError")
    return claims


def _pyjwt_decode(token: str, secret: str) -> dict:
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["iat"], "verify_iat": False, "verify_exp": True},
        )
    except jwt.PyJWTError as error:
        raise InvalidSignature(f"invalid token: {type(error).__name__}") from None


def verify(
    token: str,
    body: bytes,
    *,
    secrets: Sequence[str],
    max_age: int,
    now: float | None = None,
) -> dict:
    """The token's claims, if `token` signs `body` with one of `secrets` and is fresh.

    `secrets` holds the current secret and, during a rotation, the previous one.
    The algorithm is pinned to HS256, so `none`, RS256 or HS512 tokens fail.
    """
    if len(token) > MAX_TOKEN_LENGTH or not _JWT_FORM.fullmatch(token):
        raise InvalidSignature("invalid token: DecodeError")
    claims = _pinned_hs256(token, secrets)
    if claims is None:
        raise InvalidSignature("signature does not match")

    issued_at = claims.get("iat")
    if (
        not isinstance(issued_at, int | float)
        or isinstance(issued_at, bool)
        or not math.isfinite(issued_at)
    ):
        # NaN compares false with everything, so it would pass both window checks.
        raise InvalidSignature("iat is not a finite number")
    current = time.time() if now is None else now
    if issued_at < current - max_age:
        raise InvalidSignature("token is too old")
    if issued_at > current + FUTURE_SKEW_SECONDS:
        raise InvalidSignature("token is issued in the future")

    expected = claims.get("payload_hash")
    if not isinstance(expected, str):
        raise InvalidSignature("payload_hash is missing")
    actual = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(expected.lower().encode(), actual.encode()):
        raise InvalidSignature("payload_hash does not match the body")
    return claims


def sign(body: bytes, secret: str, *, issued_at: float | None = None, **claims) -> str:
    """A token as Vonage would send for `body`: for the simulator, the CLI and tests."""
    payload = {
        "iat": int(time.time() if issued_at is None else issued_at),
        "jti": claims.pop("jti", None) or str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")
