"""RFC 9457 problem details: one exception, one renderer, for every error."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

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
        **extra: Any,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = PROBLEM_BASE + type if type else "about:blank"
        self.errors = errors
        self.headers = headers or {}
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
    if "Retry-After" in problem.headers:
        g.retry_after = problem.headers["Retry-After"]
    g.problem_type = problem.type
    return response


def _from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    detail = error.description if status < 500 else None
    problem = Problem(status, error.name, detail=detail)
    response = problem_response(problem)
    original = error.get_response()
    for name in ("Retry-After", "Allow", "WWW-Authenticate"):
        if name in original.headers:
            response.headers[name] = original.headers[name]
    return response


def _from_unexpected(error: InternalServerError) -> Response:
    """Flask has already logged the exception with its trace (`app.log_exception`)."""
    return problem_response(Problem(500, "Internal Server Error"))


def dependency_problem(**extra: Any) -> Problem:
    """The database or the limit storage does not answer: 503, so callers retry."""
    return Problem(
        503,
        "Service Unavailable",
        type="dependency-unavailable",
        detail="a backing service does not answer; retry later",
        headers={"Retry-After": "5"},
        **extra,
    )


def _dependency_down(error: Exception) -> Response:
    log.error("dependency unavailable: %s", type(error).__name__)
    return problem_response(dependency_problem())


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(OperationalError, _dependency_down)
    app.register_error_handler(InterfaceError, _dependency_down)
    app.register_error_handler(RedisError, _dependency_down)
    app.register_error_handler(InternalServerError, _from_unexpected)
    app.register_error_handler(HTTPException, _from_http_exception)
