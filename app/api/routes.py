"""The API blueprint: /send-sms, /messages, /health."""

from __future__ import annotations

import functools

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from redis.exceptions import RedisError

from app import metrics
from app.api import erasure, message_filters, paging, serializers
from app.api.auth import rate_limit_key, require_api_key, require_metrics_token
from app.api.schemas import DestinationNotAllowed, idempotency_key, json_object, parse_send
from app.channels import CHANNELS
from app.errors import Problem, validation_problem
from app.events.backlog import BacklogCollector
from app.extensions import engine, limiter, reading, settings
from app.failures import Failure
from app.observability import annotate
from app.sending import Sender
from app.sms import InvalidNumber, mask_number
from app.status import MESSAGE_STATUSES
from app.store import messages as store
from app.store.engine import STORAGE_ERRORS

bp = Blueprint("api", __name__)


def _send_limit() -> str:
    return settings().send_sms_rate_limit


def _counting_refusals(view):
    """Count a send refused before it reached the sender: the rate limit (checked
    inside the limiter's decorator), the key, the body. The sender counts the rest."""

    @functools.wraps(view)
    def counted(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except Failure:
            raise  # decided, and counted, by the sender
        except Exception as error:
            metrics.SENDS.labels(_refusal(error)).inc()
            raise

    return counted


def _refusal(error: Exception) -> str:
    if isinstance(error, RateLimitExceeded):
        return "rate_limited"
    if isinstance(error, DestinationNotAllowed):
        return "destination_refused"
    if isinstance(error, (*STORAGE_ERRORS, RedisError)):
        return "unavailable"
    if isinstance(error, Problem) and error.status == 401:
        return "unauthorized"
    return "invalid"


@bp.post("/send-sms")
@_counting_refusals
@limiter.limit(_send_limit, key_func=rate_limit_key)
def send_sms():
    require_api_key()
    key = idempotency_key(request)
    body = json_object(request)
    config = settings()
    send_request = parse_send(
        body,
        config.sms_max_length,
        config.send_sms_allowed_countries,
        config.send_sms_blocked_countries,
    )
    sender: Sender = current_app.extensions["sender"]
    result = sender.send(send_request, owner=g.api_key_id, idempotency_key=key)
    if result.replayed:
        return jsonify(result.body), result.status, {"Idempotent-Replayed": "true"}
    annotate(
        message_id=result.body["id"], to=mask_number(send_request.to), attempts=result.attempts
    )
    return jsonify(result.body), result.status


@bp.get("/messages")
def list_messages():
    require_api_key()
    filters, limit, after = _history_query(request.args)
    with reading() as connection:
        rows = store.list_messages(connection, filters, limit + 1, after)
    next_cursor = paging.encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return jsonify(
        messages=[serializers.message_json(row) for row in rows[:limit]], next_cursor=next_cursor
    )


@bp.get("/messages/<identifier>")
def get_message(identifier: str):
    require_api_key()
    if len(identifier) > 64 or "\x00" in identifier:
        raise Problem(404, "Not Found", detail="no message with that id")
    with reading() as connection:
        row = store.find_message(connection, identifier)
        uuid = row["message_uuid"] if row else identifier
        events = store.events_for(connection, uuid) if uuid else []
    if row is None and not events:
        raise Problem(404, "Not Found", detail="no message with that id")
    message = (
        serializers.message_json(row) if row else serializers.known_only_by_events(uuid, events)
    )
    message["events"] = [serializers.event_json(event) for event in events]
    return jsonify(message)


def _history_query(args):
    errors = []
    allowed = {"direction", "channel", "number", "status", "limit", "cursor"}
    for name in sorted(set(args) - allowed):
        errors.append({"field": name, "message": "is not a known filter"})
    for name in sorted(allowed & set(args)):
        if len(args.getlist(name)) > 1:
            errors.append({"field": name, "message": "must be given once"})
    direction = args.get("direction")
    if direction is not None and direction not in message_filters.DIRECTIONS:
        errors.append({"field": "direction", "message": "must be inbound or outbound"})
    channel = args.get("channel")
    if channel is not None and channel not in CHANNELS:
        errors.append({"field": "channel", "message": f"must be one of {', '.join(CHANNELS)}"})
    status = args.get("status")
    if status is not None and status not in MESSAGE_STATUSES:
        errors.append(
            {"field": "status", "message": "must be one of " + ", ".join(MESSAGE_STATUSES)}
        )
    number = args.get("number")
    if number is not None:
        try:
            number = message_filters.number_filter(number)
        except InvalidNumber as error:
            errors.append({"field": "number", "message": str(error)})
    limit = paging.DEFAULT_LIMIT
    raw_limit = args.get("limit")
    if raw_limit is not None:
        if (
            not (raw_limit.isascii() and raw_limit.isdigit())
            or not 1 <= int(raw_limit) <= paging.MAX_LIMIT
        ):
            errors.append(
                {
                    "field": "limit",
                    "message": f"must be a whole number from 1 to {paging.MAX_LIMIT}",
                }
            )
        else:
            limit = int(raw_limit)
    if errors:
        raise validation_problem(errors)
    cursor = args.get("cursor")
    after = paging.decode_cursor(cursor) if cursor else None
    return store.MessageFilter(direction, number, status, channel), limit, after


bp.add_url_rule("/numbers/<number>", view_func=erasure.erase_number, methods=["DELETE"])


@bp.get("/metrics")
def prometheus_metrics():
    require_metrics_token()
    body, content_type = metrics.render(extra=(BacklogCollector(engine()),))
    return Response(body, content_type=content_type)


@bp.get("/health")
def health():
    return jsonify(status="ok")


@bp.get("/health/ready")
def ready():
    """Ready when the database takes a write: a cached probe, at most one tiny write
    every few seconds per worker, however often the load balancer asks."""
    if not current_app.extensions["readiness"].can_store():
        raise Problem(
            503,
            "Service Unavailable",
            detail="the database does not take writes",
            retry_after=5,
        )
    return jsonify(status="ok", database="ok")
