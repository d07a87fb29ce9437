"""Bearer API keys for /send-sms and /messages, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

from flask import g, request

from app.errors import Problem
from app.extensions import settings


def fingerprint(api_key: str) -> str:
    """A stable, non-secret name for a key: for rate limits, idempotency, logs."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def matching_key(presented: str, allowed: tuple[str, ...]) -> str | None:
    """The allowed key equal to `presented`; every key is compared, in constant time."""
    presented_digest = _digest(presented)
    match = None
    for key in allowed:
        if hmac.compare_digest(presented_digest, _digest(key)):
            match = key
    return match


def presented_key() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def api_key_id() -> str | None:
    """The fingerprint of the request's valid API key, or None; computed once per request."""
    if "api_key_id" not in g:
        token = presented_key()
        key = matching_key(token, settings().api_keys) if token else None
        g.api_key_id = fingerprint(key) if key else None
    return g.api_key_id


def require_api_key() -> None:
    """Raise 401 unless the request carries a valid API key.

    Not a `before_request` hook: each API view calls it first (after its rate
    limit, keyed by `rate_limit_key`); the events blueprint runs it before every
    request.
    """
    if api_key_id() is None:
        raise Problem(
            401,
            "Unauthorized",
            detail="send Authorization: Bearer <API key>",
            headers={"WWW-Authenticate": 'Bearer realm="sms"'},
        )


def rate_limit_key() -> str:
    """Per API key when one is valid; per client address otherwise."""
    key_id = api_key_id()
    return f"key:{key_id}" if key_id else f"addr:{request.remote_addr}"


def require_metrics_token() -> None:
    """/metrics takes `METRICS_TOKEN` when it is set (a scraper's credential that
    cannot send), otherwise an API key: every route but health and docs needs one."""
    expected = settings().metrics_token
    if expected:
        token = presented_key()
        if token is not None and matching_key(token, (expected,)) is not None:
            return
        detail = "send Authorization: Bearer <METRICS_TOKEN>"
    elif api_key_id() is not None:
        return
    else:
        detail = "send Authorization: Bearer <API key>, or set METRICS_TOKEN for the scraper"
    raise Problem(
        401,
        "Unauthorized",
        detail=detail,
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )
