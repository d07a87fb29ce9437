"""Logs: JSON lines with a request id, one access line per request, no secrets.

Full phone numbers, message texts, API keys and JWTs never reach a log line:
the code logs masked numbers only, and a last-line filter scrubs anything that
still looks like a phone number or a JWT, whatever logger produced it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from app import metrics
from app.config import Settings

REQUEST_ID_HEADER = "X-Request-ID"
#: A WSGI environ key: when a layer in front of Flask (the webhook fast path)
#: began with the request, so its time there is in the latency too.
STARTED = "sms.started"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_NUMBER = re.compile(r"(?<![\w-])\+?\d{7,15}(?![\w-])")
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")
_BEARER = re.compile(r"(?i)bearer\s+\S+")

log = logging.getLogger("app.access")


def _masked(match: re.Match) -> str:
    return "*" * (len(match.group()) - 4) + match.group()[-4:]


def scrub(text: str) -> str:
    text = _JWT.sub("[jwt]", text)
    text = _BEARER.sub("Bearer [redacted]", text)
    return _NUMBER.sub(_masked, text)


class _ContextFilter(logging.Filter):
    """Adds the request id and scrubs the message and string extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id", "-")
        elif not hasattr(record, "request_id"):  # the webhook fast path passes its own
            record.request_id = "-"
        message = record.getMessage()
        record.msg, record.args = scrub(message), None
        for name, value in list(vars(record).items()):
            if name not in _PLAIN and isinstance(value, str):
                setattr(record, name, scrub(value))
        return True


# In a raw request line a number may follow a letter or a hyphen (`%2B1415…`,
# `X-To-1415…`), which `scrub` leaves alone to spare ids; gunicorn's lines carry
# no ids, and its pids have at most 7 digits.
_DIGIT_RUN = re.compile(r"(?<!\d)\d{8,15}(?!\d)")


class ScrubFilter(logging.Filter):
    """For loggers with handlers of their own (gunicorn's error log): it quotes the
    request line or header it refuses, a number or a token among them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = scrub(record.getMessage())
        record.msg, record.args = _DIGIT_RUN.sub(_masked, message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


_PLAIN = frozenset(
    {"request_id", "name", "levelname", "pathname", "filename", "module", "funcName", "msg"}
    | {"processName", "threadName", "taskName", "exc_text", "stack_info", "route"}
)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (as gunicorn and pytest swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _ScrubbedTraces:
    """A formatter mixin: tracebacks and stacks are scrubbed too, as an exception's
    message (a driver's error, a library's ValueError) may quote a number or a token."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging.Formatter's name
        return scrub(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging.Formatter's name
        return scrub(super().formatStack(stack_info))


class _JsonFormatter(_ScrubbedTraces, JsonFormatter):
    pass


_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class TextFormatter(_ScrubbedTraces, logging.Formatter):
    """One readable line: local time with its offset, level, logger, request id,
    the message, then every field the event carries (`key=value`).

    An access line reads `GET /messages/<identifier> 200 3.1ms`, then its other fields.
    """

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone()
        fields = {
            name: value
            for name, value in vars(record).items()
            if name not in _RECORD_ATTRIBUTES and name != "request_id" and value is not None
        }
        message = record.getMessage()
        if message == "request" and "route" in fields:
            duration = fields.pop("duration_ms", None)
            parts = [fields.pop("method", ""), fields.pop("route"), fields.pop("status", "")]
            message = " ".join(map(str, parts)) + (f" {duration}ms" if duration is not None else "")
        line = (
            f"{moment.isoformat(timespec='milliseconds')} {record.levelname:<7} {record.name} "
            f"[{getattr(record, 'request_id', '-')}] {message}"
        )
        if fields:
            line += "  " + " ".join(
                f"{name}={_text_value(value)}" for name, value in fields.items()
            )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


def configure_logging(settings: Settings) -> None:
    handler = _StderrHandler()
    if settings.log_format == "json":
        handler.setFormatter(
            _JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, "_sms_service", False)]:
        root.removeHandler(existing)
    handler._sms_service = True
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # The SDK logs numbers, texts and JWTs at DEBUG; urllib3 logs URLs.
    logging.getLogger("vonage").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # The development server's own request lines would repeat the access line,
    # with the query string (which may hold a number) in it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Alembic says which dialect it uses at INFO on every start; `flask migrate`
    # reports the revisions itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _acceptable_request_id(value: str) -> bool:
    """A client's X-Request-ID is logged unscrubbed, so only a short, plain token
    that carries nothing scrubbing would hide (a phone number, a JWT) is kept."""
    return bool(_VALID_REQUEST_ID.fullmatch(value)) and scrub(value) == value


def annotate(**fields) -> None:
    """Add fields to this request's access line (one line per request, not two)."""
    g.setdefault("log_fields", {}).update(fields)


def request_id_for(incoming: str | None) -> str:
    """The id of a request: the caller's X-Request-ID when acceptable, else a new one."""
    return incoming if incoming and _acceptable_request_id(incoming) else uuid.uuid4().hex


def finish_request(
    method: str, route: str | None, status: int, seconds: float, fields: dict, request_id: str
) -> None:
    """The latency sample and the one access line of a finished request (`route`:
    the matched URL rule, None when nothing matched)."""
    labels = metrics.request_labels(route, method, status)
    metrics.REQUEST_LATENCY.labels(*labels).observe(seconds)
    log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": method,
            "route": route or "<unmatched>",
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            **fields,
        },
    )


def init_app(app: Flask, settings: Settings) -> None:
    configure_logging(settings)

    @app.before_request
    def _start() -> None:
        g.request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        g.started = request.environ.get(STARTED) or time.perf_counter()

    @app.after_request
    def _finish(response):
        request_id = g.get("request_id", "-")
        response.headers[REQUEST_ID_HEADER] = request_id
        # `_start` runs first of every hook; the default is only for a request it never saw.
        started = g.get("started") or time.perf_counter()
        route = request.url_rule.rule if request.url_rule else None
        finish_request(
            request.method,
            route,
            response.status_code,
            time.perf_counter() - started,
            g.get("log_fields", {}),
            request_id,
        )
        return response
