"""Signed webhooks answered without Flask's request stack: the hot path.

Vonage posts every inbound message and every receipt, so these two URLs carry
most of the service's traffic. Through Flask each one paid for a request
context, URL matching, the rate limiter's per-request check (webhooks have no
limit) and response objects, about half of its CPU (README "Performance").
This WSGI middleware answers the common case itself, with the very steps the
blueprint takes (`signature.verify`, `interpret.interpret`, `intake.store`,
`observability.finish_request`) and byte for byte the same answer.

Anything else is handed, body included, to the Flask app, whose webhooks
blueprint answers it as before (problem+json, metrics, logs): no signature
or a bad one, a body that is not an event the service reads (a dead letter,
not JSON), a body without a plain Content-Length within the limit, no
signature secret configured. A failure while storing is handed over too, with
the error in the environ (`STORE_FAILED`): the blueprint answers it as its
own (a 503 for the database) without a second attempt, which would double the
wait for a locked database. The access line and latency of a handed-over
request count from when it reached this path (`observability.STARTED`).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine

from app.config import Settings
from app.observability import REQUEST_ID_HEADER, STARTED, finish_request, request_id_for
from app.webhooks import intake, interpret
from app.webhooks.signature import (
    InvalidSignature,
    MissingSignature,
    bearer_token,
    check_form,
    verify,
)

ROUTES = {"/webhooks/inbound": interpret.INBOUND, "/webhooks/status": interpret.STATUS}
# WSGI environ keys (no HTTP header can set one, as headers become HTTP_*):
#: present, the request skips this path;
FULL_STACK = "sms.full_stack"
#: what storing the event raised here, for the blueprint to answer (a database
#: failure as its 503, anything else as its 500), never by trying again.
STORE_FAILED = "sms.webhook_store_failed"
#: A Content-Length longer than this is not read as a number (Python refuses
#: over 4 300 digits; the body limit needs five).
MAX_LENGTH_DIGITS = 10

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class WebhookFastPath:
    def __init__(
        self,
        app: WsgiApp,
        *,
        settings: Settings,
        engine: Engine,
        max_body: int,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.max_body = max_body
        self.on_request = on_request
        self.secrets = [settings.vonage_signature_secret, settings.vonage_signature_secret_previous]
        self.max_age = settings.webhook_max_age_seconds
        self.routing_days = settings.reply_routing_days

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        kind = ROUTES.get(path)
        if (
            kind is None
            or environ.get("REQUEST_METHOD") != "POST"
            or not self.secrets[0]
            or FULL_STACK in environ
        ):
            return self.app(environ, start_response)
        started = environ[STARTED] = time.perf_counter()  # a handed-over request's too
        if self.on_request is not None:
            self.on_request()  # first, as Flask's before_request hooks run first
        token = _token(environ)
        body = None if token is None else self._body(environ)
        answered = None if body is None else self._store(kind, token, body, environ)
        if answered is None:
            return self.app(environ, start_response)
        new, fields = answered
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        payload = intake.answer_bytes(new)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            (REQUEST_ID_HEADER, request_id),
        ]
        finish_request("POST", path, 200, time.perf_counter() - started, fields, request_id)
        start_response("200 OK", headers)
        return [payload]

    def _body(self, environ: dict) -> bytes | None:
        """The whole body when it has a plain Content-Length within the limit, kept for
        the full stack to read again; None (the request untouched) otherwise."""
        length = environ.get("CONTENT_LENGTH") or ""
        if not (length.isascii() and length.isdigit() and len(length) <= MAX_LENGTH_DIGITS):
            return None
        size = int(length)
        if size > self.max_body or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        body = environ["wsgi.input"].read(size)
        environ["wsgi.input"] = io.BytesIO(body)
        return body if len(body) == size else None

    def _store(
        self, kind: str, token: str, body: bytes, environ: dict
    ) -> tuple[bool, dict[str, Any]] | None:
        """(new, access-line fields) once the event is stored; None for the full stack."""
        try:
            verify(token, body, secrets=self.secrets, max_age=self.max_age)
            event = interpret.interpret(kind, body)
        except Exception:  # noqa: BLE001 - refused, unreadable or a fault: the blueprint answers
            return None
        if not isinstance(event, interpret.Event):
            return None
        try:
            return intake.store(self.engine, event, routing_days=self.routing_days)
        except Exception as error:  # noqa: BLE001 - the blueprint answers it, without a retry
            environ[STORE_FAILED] = error
            return None


def _token(environ: dict) -> str | None:
    """The bearer token when it has a Vonage token's form; None (the body unread) otherwise."""
    try:
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        check_form(token)
    except (MissingSignature, InvalidSignature):
        return None
    return token
