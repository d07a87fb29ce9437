"""The events blueprint: /subscriptions and /events, per API key.

A key sees only its own subscriptions and events; anyone else's answer 404,
exactly like an id that does not exist.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from flask import Blueprint, g, jsonify, request, url_for

from app.api import paging, serializers
from app.api.auth import require_api_key
from app.api.schemas import json_object
from app.errors import Problem, validation_problem
from app.events import outbox, schemas, signing
from app.extensions import reading, settings, writing
from app.store import outbox as store
from app.store.dialect import utcnow

bp = Blueprint("events", __name__)

ROTATION_OVERLAP = timedelta(hours=24)
# Each subscription is a lane, a row probed on every dispatcher loop and an
# endpoint kept open: a key may not make them without end.
MAX_SUBSCRIPTIONS_PER_KEY = 100


@bp.before_request
def authenticate() -> None:
    require_api_key()


def _not_found(what: str) -> Problem:
    return Problem(404, "Not Found", detail=f"no {what} with that id")


def subscription_json(row: dict, *, secret: str | None = None) -> dict:
    body = {
        "id": row["id"],
        "url": row["url"],
        "events": row["event_types"],
        "scope": row["scope"],
        "enabled": row["disabled_at"] is None,
        "disabled_at": serializers.iso(row["disabled_at"]),
        "disabled_reason": row["disabled_reason"],
        "previous_secret_expires_at": serializers.iso(row["previous_secret_until"]),
        "created_at": serializers.iso(row["created_at"]),
    }
    if secret is not None:
        body["secret"] = secret
    return body


@bp.post("/subscriptions")
def create_subscription():
    config = settings()
    new = schemas.parse_subscription(
        json_object(request),
        https_only=config.is_production,
        allow_private=config.allow_private_event_urls,
    )
    row = {
        "id": str(uuid.uuid4()),
        "owner": g.api_key_id,
        "url": new.url,
        "event_types": new.events,
        "scope": new.scope,
        "secret": signing.new_secret(),
        "previous_secret": None,
        "previous_secret_until": None,
        "disabled_at": None,
        "disabled_reason": None,
        "created_at": utcnow(),
    }
    with writing() as connection:
        if store.count_subscriptions(connection, g.api_key_id) >= MAX_SUBSCRIPTIONS_PER_KEY:
            message = f"this key already has {MAX_SUBSCRIPTIONS_PER_KEY} subscriptions"
            raise validation_problem([{"field": "subscriptions", "message": message}])
        store.insert_subscription(connection, row)
    response = jsonify(subscription_json(row, secret=row["secret"]))
    response.headers["Location"] = url_for(".get_subscription", subscription_id=row["id"])
    return response, 201


@bp.get("/subscriptions")
def list_subscriptions():
    with reading() as connection:
        rows = store.list_subscriptions(connection, g.api_key_id)
    return jsonify(subscriptions=[subscription_json(row) for row in rows])


def _own_subscription(connection, subscription_id: str) -> dict:
    row = None
    if schemas.valid_id(subscription_id):
        row = store.get_subscription(connection, g.api_key_id, subscription_id)
    if row is None:
        raise _not_found("subscription")
    return row


@bp.get("/subscriptions/<subscription_id>")
def get_subscription(subscription_id: str):
    with reading() as connection:
        row = _own_subscription(connection, subscription_id)
    return jsonify(subscription_json(row))


@bp.patch("/subscriptions/<subscription_id>")
def update_subscription(subscription_id: str):
    """Change `url`, `events`, `scope` or `enabled` (e.g. enable again after a 410)."""
    config = settings()
    changes = schemas.parse_subscription_update(
        json_object(request),
        https_only=config.is_production,
        allow_private=config.allow_private_event_urls,
    )
    with writing() as connection:
        # The update finds the key's own subscription or nothing: another key's id is 404 too.
        if not (
            schemas.valid_id(subscription_id)
            and store.update_subscription(
                connection, g.api_key_id, subscription_id, changes, utcnow()
            )
        ):
            raise _not_found("subscription")
        row = _own_subscription(connection, subscription_id)
    return jsonify(subscription_json(row))


@bp.delete("/subscriptions/<subscription_id>")
def delete_subscription(subscription_id: str):
    deleted = schemas.valid_id(subscription_id)
    if deleted:
        with writing() as connection:
            deleted = store.delete_subscription(connection, g.api_key_id, subscription_id)
    if not deleted:
        raise _not_found("subscription")
    return "", 204


@bp.post("/subscriptions/<subscription_id>/rotate-secret")
def rotate_secret(subscription_id: str):
    """A new secret; the old one keeps signing (a second signature) for 24 h."""
    secret = signing.new_secret()
    with writing() as connection:
        _own_subscription(connection, subscription_id)
        store.rotate_secret(
            connection, g.api_key_id, subscription_id, secret, utcnow() + ROTATION_OVERLAP
        )
        row = _own_subscription(connection, subscription_id)
    return jsonify(subscription_json(row, secret=secret))


def event_json(row: dict, event_deliveries: list[dict]) -> dict:
    body = json.loads(row["body"])
    return {
        "id": row["id"],
        "type": row["type"],
        "timestamp": body["timestamp"],
        "data": body["data"],
        "status": store.event_state(event_deliveries),
        "deliveries": [_delivery_json(delivery) for delivery in event_deliveries],
    }


def _delivery_json(row: dict) -> dict:
    return {
        "subscription_id": row["subscription_id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_attempt_at": serializers.iso(row["last_attempt_at"]),
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "next_attempt_at": serializers.iso(row["next_attempt_at"])
        if row["status"] == store.PENDING
        else None,
        "delivered_at": serializers.iso(row["delivered_at"]),
    }


@bp.get("/events")
def list_events():
    filters, limit, after = schemas.parse_event_query(request.args)
    with reading() as connection:
        rows = store.list_events(connection, g.api_key_id, filters, limit + 1, after)
        found = store.deliveries_of(connection, [row["id"] for row in rows[:limit]])
    next_cursor = paging.encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return jsonify(
        events=[event_json(row, found[row["id"]]) for row in rows[:limit]],
        next_cursor=next_cursor,
    )


def _own_event(connection, event_id: str) -> dict:
    row = None
    if schemas.valid_id(event_id):
        row = store.get_event(connection, g.api_key_id, event_id)
    if row is None:
        raise _not_found("event")
    return row


@bp.get("/events/<event_id>")
def get_event(event_id: str):
    with reading() as connection:
        row = _own_event(connection, event_id)
        found = store.deliveries_of(connection, [row["id"]])
    return jsonify(event_json(row, found[row["id"]]))


@bp.post("/events/<event_id>/redeliver")
def redeliver(event_id: str):
    """Queue the event again for each of the key's enabled subscriptions that take its type.

    `scope: own` ones only when the event reached the key by routing, not only by `scope: all`.
    """
    with writing() as connection:
        row = _own_event(connection, event_id)
        routed = outbox.routed_to_owner(connection, row, routing_days=settings().reply_routing_days)
        queued = store.redeliver_event(connection, row, utcnow(), routed=routed)
    return jsonify(id=row["id"], status="pending" if queued else "none", deliveries=queued), 202
