"""The webhooks blueprint: Vonage's inbound messages and delivery receipts.

Each call is verified before anything is read, stored in one transaction, and
only then answered 200. Vonage retries 429 and 5xx answers only, so a 503 is
the answer whenever the event must come again (no signature at all, database
down) and a 4xx only where a retry could never succeed. A correctly signed
event the service cannot interpret is kept raw as a dead letter and answered
200: a 4xx would lose it for good.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from app import metrics
from app.errors import Problem
from app.extensions import engine, settings, write_grouped
from app.failures import DependencyUnavailable
from app.observability import annotate
from app.webhooks import dead_letters, intake, interpret
from app.webhooks.fast_path import STORE_FAILED
from app.webhooks.signature import (
    InvalidSignature,
    MissingSignature,
    bearer_token,
    check_form,
    verify,
)

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


def _count(outcome: str) -> None:
    """One `sms_webhooks_total` sample for this call, by its kind (inbound, status)."""
    kind = (request.endpoint or ".unknown").rsplit(".", 1)[-1]
    metrics.WEBHOOKS.labels(kind, outcome).inc()


@bp.before_request
def verify_signature() -> None:
    if request.method == "OPTIONS":
        return  # Flask's own answer (204, Allow): it reads no body and stores nothing
    config = settings()
    secrets = [config.vonage_signature_secret, config.vonage_signature_secret_previous]
    if not config.vonage_signature_secret:
        _count("unavailable")
        raise Problem(
            503, "Service Unavailable", detail="webhook signature secret is not configured"
        )
    try:
        token = bearer_token(request.headers.get("Authorization"))
        check_form(token)
        verify(
            token,
            request.get_data(cache=True),
            secrets=secrets,
            max_age=config.webhook_max_age_seconds,
        )
    except MissingSignature:
        _count("unsigned")
        raise Problem(
            503,
            "Unsigned webhook",
            type="unsigned-webhook",
            detail="no Authorization header; Vonage will retry with a signed call",
            retry_after=60,
        ) from None
    except InvalidSignature as error:
        _count("bad_signature")
        raise Problem(401, "Invalid signature", detail=str(error)) from None
    except HTTPException:
        _count("invalid")  # the body is too large to read
        raise


def _interpret(kind: str) -> interpret.Event | interpret.DeadLetter:
    try:
        return interpret.interpret(kind, request.get_data(cache=True))
    except interpret.NotJson as error:
        _count("invalid")
        raise Problem(400, "Bad Request", detail=str(error)) from None


@contextmanager
def _storage_failure_answered() -> Iterator[None]:
    """A database failure is a 503, so Vonage delivers the event again: never a 200."""
    try:
        yield
    except SQLAlchemyError:
        log.exception("webhook not stored")
        _count("unavailable")
        raise DependencyUnavailable("the event could not be stored; retry later") from None


def _keep_dead_letter(letter: interpret.DeadLetter):
    """Store the raw body, count it once committed, and acknowledge it."""
    body = request.get_data(cache=True)
    with _storage_failure_answered():
        # Webhooks arrive in bursts: they share commits (one fsync for the batch),
        # and each is answered only once the commit holding it is durable.
        stored = write_grouped(lambda connection: dead_letters.keep(connection, letter, body))
    _count("dead_letter")
    if stored:
        metrics.DEAD_LETTERS.labels(letter.kind, letter.reason).inc()
    annotate(dead_letter=letter.reason, duplicate=not stored)
    log.warning("webhook kept as a dead letter: %s (%s)", letter.reason, letter.detail)
    return jsonify(status="ok", duplicate=not stored, dead_letter=True)


def _receive(kind: str):
    event = _interpret(kind)
    if isinstance(event, interpret.DeadLetter):
        return _keep_dead_letter(event)
    with _storage_failure_answered():
        failed = request.environ.get(STORE_FAILED)
        if failed is not None:
            raise failed  # the fast path's attempt failed: that is the answer, not a retry
        new, fields = intake.store(engine(), event, routing_days=settings().reply_routing_days)
    annotate(**fields)
    return jsonify(intake.answer(new))


@bp.post("/inbound")
def inbound():
    return _receive(interpret.INBOUND)


@bp.post("/status")
def status():
    return _receive(interpret.STATUS)
