"""RFC 9457 problem details: one exception, one renderer, for every error.

The domain raises typed failures (`app.failures`, `app.sending.failures`) that
know nothing of HTTP; `problem_for` is the one place that says how each is
answered (type, title, status, detail, Retry-After), and `problem_response`
the one place that writes a problem, its `Retry-After` included.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.failures import DependencyUnavailable, Failure
from app.sending.failures import (
    AbandonedOutcomeUnknown,
    DailyLimitReached,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    NoSendSlot,
    OptedOut,
    OutcomeUnknown,
    ReplayedFailure,
    SendInterrupted,
    TooManyInFlight,
    VonageNotConfigured,
    VonageRefused,
    VonageUnavailable,
)
from app.store.engine import STORAGE_ERRORS

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:sms-service:problem:"

log = logging.getLogger(__name__)


class Problem(Exception):
    """An error answered to the client as `application/problem+json`."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        detail: str | None = None,
        type: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = PROBLEM_BASE + type if type else "about:blank"
        self.errors = errors
        self.headers = headers or {}
        #: Seconds (or an HTTP date) for `Retry-After`; a number is rounded, at least 1.
        self.retry_after = retry_after
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


MAX_ERRORS = 20
MAX_FIELD_NAME = 64


def validation_problem(errors: list[dict[str, str]]) -> Problem:
    """422 listing what is wrong, at most MAX_ERRORS entries with field names cut short.

    A body of thousands of unknown fields must not earn an answer ten times its size;
    `errors_omitted` says how many were left out.
    """
    shown = [{**error, "field": _short(error["field"])} for error in errors[:MAX_ERRORS]]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in shown)
    extra = {}
    omitted = len(errors) - len(shown)
    if omitted:
        detail += f"; and {omitted} more errors omitted"
        extra["errors_omitted"] = omitted
    return Problem(
        422, "Validation failed", type="validation", detail=detail, errors=shown, **extra
    )


def _short(field: str) -> str:
    return field if len(field) <= MAX_FIELD_NAME else field[: MAX_FIELD_NAME - 1] + "…"


def problem_response(problem: Problem) -> Response:
    response = Response(json.dumps(problem.to_dict()), status=problem.status, mimetype=PROBLEM_JSON)
    for name, value in problem.headers.items():
        response.headers[name] = value
    if problem.retry_after is not None:
        response.headers["Retry-After"] = _retry_after(problem.retry_after)
    return response


def _retry_after(value: float | str) -> str:
    return value if isinstance(value, str) else str(max(1, round(value)))


def _from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    detail = error.description if status < 500 else None
    original = error.get_response()
    problem = Problem(
        status,
        error.name,
        detail=detail,
        retry_after=original.headers.get("Retry-After"),
        headers={
            name: original.headers[name]
            for name in ("Allow", "WWW-Authenticate")
            if name in original.headers
        },
    )
    return problem_response(problem)


def _from_unexpected(error: InternalServerError) -> Response:
    """Flask has already logged the exception with its trace (`app.log_exception`)."""
    return problem_response(Problem(500, "Internal Server Error"))


REPLAYED = {"Idempotent-Replayed": "true"}
PROBLEM_MEMBERS = ("type", "title", "status", "detail")
MAYBE_SENT = "the message may have been sent and will be settled by its status webhook"


def problem_for(failure: Failure) -> Problem:
    """How each failure the domain raises is answered: the one place."""
    replayed = dict(REPLAYED) if failure.replayed else None
    match failure:
        case DependencyUnavailable():
            return Problem(
                503,
                "Service Unavailable",
                type="dependency-unavailable",
                detail=failure.detail or "a backing service does not answer; retry later",
                retry_after=5,
            )
        case VonageNotConfigured():
            return Problem(503, "Service Unavailable", detail="Vonage is not configured")
        case TooManyInFlight():
            return Problem(
                503,
                "Too many sends in flight",
                type="sends-in-flight",
                detail=f"this worker already has {failure.limit} sends waiting on Vonage; "
                "retry shortly",
                retry_after=1,
            )
        case OptedOut():
            return Problem(
                422,
                "Recipient opted out",
                type="opted-out",
                detail="the recipient replied STOP; they must reply START before you can text them",
            )
        case DailyLimitReached():
            return Problem(
                429,
                "Daily send limit reached",
                type="daily-limit",
                detail=f"at most {failure.limit} messages per UTC day",
                retry_after=failure.seconds_to_reset,
            )
        case NoSendSlot():
            return Problem(
                503,
                "Service Unavailable",
                type="no-send-slot",
                detail="the outbound throttle has no free slot within the time budget",
                retry_after=failure.retry_after,
            )
    return _vonage_or_replay_problem(failure, replayed)


def _vonage_or_replay_problem(failure: Failure, replayed: dict[str, str] | None) -> Problem:
    match failure:
        case OutcomeUnknown():
            return Problem(
                504 if failure.timed_out else 502,
                "Vonage timed out" if failure.timed_out else "Vonage failed",
                type="vonage-outcome-unknown",
                detail=f"{failure.detail}; {MAYBE_SENT}",
                id=failure.message_id,
            )
        case VonageRefused():
            return Problem(
                502, "Vonage refused the message", type="vonage-rejected", detail=failure.detail
            )
        case VonageUnavailable():
            return Problem(
                503,
                "Vonage unavailable",
                type="vonage-unavailable",
                detail=failure.detail,
                retry_after=failure.retry_after or None,
            )
        case IdempotencyKeyReused():
            return Problem(
                422,
                "Idempotency-Key reused",
                type="idempotency-key-reused",
                detail="this Idempotency-Key was first used with a different body",
            )
        case IdempotencyKeyInFlight():
            return Problem(
                409,
                "Request in progress",
                type="idempotency-key-in-flight",
                detail="the first request with this Idempotency-Key has not finished yet",
                retry_after=1,
            )
    return _replayed_problem(failure, replayed)


def _replayed_problem(failure: Failure, replayed: dict[str, str] | None) -> Problem:
    match failure:
        case AbandonedOutcomeUnknown():
            return Problem(
                504,
                "Send outcome unknown",
                type="vonage-outcome-unknown",
                detail="the first request with this Idempotency-Key stopped while Vonage was "
                f"being called; {MAYBE_SENT}",
                headers=replayed,
                id=failure.message_id,
            )
        case SendInterrupted():
            return Problem(
                503,
                "Send interrupted",
                type="send-interrupted",
                detail="the first request with this Idempotency-Key stopped before Vonage had "
                "the message; nothing was sent; retry to send it",
                headers=replayed,
                retry_after=1,
                id=failure.message_id,
            )
        case ReplayedFailure():
            body = failure.body
            extra = {
                k: v for k, v in body.items() if k not in ("type", "title", "status", "detail")
            }
            problem = Problem(
                failure.status, body["title"], detail=body.get("detail"), headers=replayed, **extra
            )
            problem.type = body["type"]
            return problem
    raise TypeError(f"no problem for {type(failure).__name__}")


def problem_body(failure: Failure) -> dict[str, Any]:
    """The body `failure` is answered with: what an Idempotency-Key stores and replays."""
    return problem_for(failure).to_dict()


def _from_failure(failure: Failure) -> Response:
    return problem_response(problem_for(failure))


def _dependency_down(error: Exception) -> Response:
    log.error("dependency unavailable: %s", type(error).__name__)
    return problem_response(problem_for(DependencyUnavailable()))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(Failure, _from_failure)
    for storage_error in STORAGE_ERRORS:
        app.register_error_handler(storage_error, _dependency_down)
    app.register_error_handler(RedisError, _dependency_down)
    app.register_error_handler(InternalServerError, _from_unexpected)
    app.register_error_handler(HTTPException, _from_http_exception)
