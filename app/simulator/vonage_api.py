"""The Messages API's own checks of a send: the RS256 JWT and the SMS body.

Pure functions returning Vonage-shaped problem bodies, so they are tested
without a server.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

ERRORS_BASE = "https://developer.vonage.com/api-errors"
NUMBER = re.compile(r"[1-9][0-9]{6,14}")
# The SDK's `from_` is a phone number or any string; Vonage takes a number of up
# to 15 digits (a national one may start with 0) or an alphanumeric sender id
# of up to 11 characters.
SENDER = re.compile(r"[0-9]{1,15}|(?=[0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11}")
WEBHOOK_VERSIONS = ("v0.1", "v1")
MAX_TEXT = 3200
MAX_CLIENT_REF = 100


def public_key_pem(private_key_pem: str) -> bytes:
    """The public half of the application's private key: what Vonage holds."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def problem(type_: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"{ERRORS_BASE}{type_}",
        "title": title,
        "detail": detail,
        "instance": str(uuid.uuid4()),
        **extra,
    }


def unauthorized(reason: str) -> dict[str, Any]:
    return problem(
        "#unauthorized",
        "Unauthorized",
        f"You did not provide correct credentials ({reason}).",
    )


def check_jwt(authorization: str | None, *, public_key: bytes, application_id: str) -> str | None:
    """None when the header carries a valid RS256 JWT for `application_id`, else why not."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "no bearer token"
    try:
        claims = jwt.decode(
            token.strip(),
            public_key,
            algorithms=["RS256"],
            options={"require": ["iat", "jti", "application_id"]},
        )
    except jwt.PyJWTError as error:
        return f"invalid JWT: {type(error).__name__}"
    if claims["application_id"] != application_id:
        return "application_id does not match"
    return None


def invalid_parameters(body: Any) -> list[dict[str, str]]:
    """What Vonage would list in `invalid_parameters` for an SMS send."""
    if not isinstance(body, dict):
        return [{"name": "body", "reason": "must be a JSON object"}]
    errors = []
    if body.get("channel") != "sms":
        errors.append({"name": "channel", "reason": "must be sms"})
    if body.get("message_type") != "text":
        errors.append({"name": "message_type", "reason": "must be text"})
    to = body.get("to")
    if not isinstance(to, str) or not NUMBER.fullmatch(to):
        errors.append({"name": "to", "reason": "must be 7 to 15 digits, without a leading +"})
    sender = body.get("from")
    if not isinstance(sender, str) or not SENDER.fullmatch(sender):
        errors.append(
            {
                "name": "from",
                "reason": "must be up to 15 digits or an alphanumeric sender id of up to 11",
            }
        )
    text = body.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
        errors.append({"name": "text", "reason": f"must be 1 to {MAX_TEXT} characters"})
    client_ref = body.get("client_ref")
    if client_ref is not None and (
        not isinstance(client_ref, str) or len(client_ref) > MAX_CLIENT_REF
    ):
        errors.append(
            {"name": "client_ref", "reason": f"must be at most {MAX_CLIENT_REF} characters"}
        )
    webhook_version = body.get("webhook_version")
    if webhook_version is not None and webhook_version not in WEBHOOK_VERSIONS:
        errors.append({"name": "webhook_version", "reason": "must be v0.1 or v1"})
    webhook_url = body.get("webhook_url")
    if webhook_url is not None and (
        not isinstance(webhook_url, str) or not webhook_url.startswith(("http://", "https://"))
    ):
        errors.append({"name": "webhook_url", "reason": "must be an http(s) URL"})
    return errors


def invalid_json_problem() -> dict[str, Any]:
    """Vonage's 400 for a body that is not JSON at all (its SDKs' `bad-request` fixture)."""
    return problem(
        "#invalid-json",
        "The request body did not contain valid JSON",
        "The request body could not be parsed as JSON.",
    )


def invalid_params_problem(errors: list[dict[str, str]]) -> dict[str, Any]:
    return problem(
        "/messages#1150",
        "Invalid params",
        "The value of one or more parameters is invalid.",
        invalid_parameters=errors,
    )


# Vonage's own answers to a refused call (its generic API errors and the SDKs' fixtures).
_REFUSALS: dict[int, tuple[str, str, str]] = {
    401: ("#unauthorized", "Unauthorized", "You did not provide correct credentials."),
    402: (
        "#low-balance",
        "Low balance",
        "This request could not be performed due to your account balance being low.",
    ),
    403: (
        "#forbidden",
        "Forbidden",
        "Your account does not have permission to perform this action",
    ),
    404: (
        "#not-found",
        "Not Found",
        "The requested resource does not exist, or you do not have access to it",
    ),
    422: ("/messages#1150", "Invalid params", "The value of one or more parameters is invalid."),
    429: ("#rate-limit", "Rate Limit Hit", "Please wait, then retry your request"),
}


def fault_problem(status: int) -> dict[str, Any]:
    """The body of an injected refusal: Vonage's shape for that status."""
    if status in _REFUSALS:
        return problem(*_REFUSALS[status])
    if status >= 500:
        return problem(
            "#internal-error", "Service Unavailable", "The simulator was told to fail this send."
        )
    return problem(f"#{status}", "Simulated refusal", "The simulator was told to refuse this send.")
