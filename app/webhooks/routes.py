"""The webhooks blueprint: Vonage's inbound messages and delivery receipts.

Each call is verified before anything is read, stored in one transaction, and
only then answered 200. Vonage retries 429 and 5xx answers only, so a 503 is
the answer whenever the event must come again (no signature at all, database
down) and a 4xx only where a retry could never succeed.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from app import metrics
from app.errors import Problem
from app.extensions import settings, writing
from app.observability import annotate
from app.sms import mask_number
from app.webhooks import events
from app.webhooks.signature import (
    InvalidSignature,
    MissingSignature,
    bearer_token,
    check_form,
    verify,
)

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


@bp.before_request
def verify_signature() -> None:
    config = settings()
    secrets = [config.vonage_signature_secret, config.vonage_signature_secret_previous]
    if not config.vonage_signature_secret:
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
        raise Problem(
            503,
            "Unsigned webhook",
            type="unsigned-webhook",
            detail="no Authorization header; Vonage will retry with a signed call",
            headers={"Retry-After": "60"},
        ) from None
    except InvalidSignature as error:
        raise Problem(401, "Invalid signature", detail=str(error)) from None


@bp.after_request
def count_webhook(response):
    kind = (request.endpoint or ".unknown").rsplit(".", 1)[-1]
    outcome = metrics.webhook_outcome(
        response.status_code, g.get("problem_type"), g.get("webhook_duplicate", False)
    )
    metrics.WEBHOOKS.labels(kind, outcome).inc()
    return response


def _payload() -> dict:
    try:
        payload = json.loads(request.get_data(cache=True))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Problem(400, "Bad Request", detail="the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Problem(400, "Bad Request", detail="the body must be a JSON object")
    return payload


def _store(store_event, parsed) -> bool:
    try:
        with writing() as connection:
            stored = store_event(connection, parsed)
        g.webhook_duplicate = not stored
        return stored
    except SQLAlchemyError:
        log.exception("webhook not stored")
        raise Problem(
            503,
            "Service Unavailable",
            type="storage-unavailable",
            detail="the event could not be stored; retry later",
        ) from None


@bp.post("/inbound")
def inbound():
    message = events.parse_inbound(_payload())
    stored = _store(events.store_inbound, message)
    annotate(
        message_uuid=message["message_uuid"],
        sender=mask_number(message["from_number"]),
        duplicate=not stored,
    )
    return jsonify(status="ok", duplicate=not stored)


@bp.post("/status")
def status():
    event = events.parse_status(_payload())
    stored = _store(events.store_status, event)
    annotate(
        message_uuid=event["message_uuid"], message_status=event["status"], duplicate=not stored
    )
    return jsonify(status="ok", duplicate=not stored)
