"""The OpenAPI description of /subscriptions and /events, merged into /openapi.json."""

from __future__ import annotations

from typing import Any

from app.events.outbox import EVENT_TYPES

Schema = dict[str, Any]
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
SECURED = [{"apiKey": []}]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _problem(status: int, description: str, schema: str = "Problem") -> Schema:
    body = {"allOf": [_ref(schema), {"properties": {"status": {"const": status}}}]}
    return {"description": description, "content": {PROBLEM_JSON: {"schema": body}}}


def _nullable(type_: str, **extra: Any) -> Schema:
    return {"type": [type_, "null"], **extra}


def _common(*statuses: int) -> dict[str, Schema]:
    known = {
        401: {
            "description": "No API key, or not one of `API_KEYS`.",
            "headers": {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}},
            },
            "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
        },
        404: _problem(404, "No such id among this key's own (another key's is 404 too)."),
        503: _problem(503, "The database does not answer."),
    }
    return {str(status): known[status] for status in statuses}


def _id_parameter(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def event_schemas() -> dict[str, Schema]:
    subscription = {
        "type": "object",
        "required": ["id", "url", "events", "scope", "enabled", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "scope": {"enum": ["own", "all"]},
            "enabled": {"type": "boolean", "description": "False once the endpoint answered 410."},
            "disabled_at": _nullable("string", format="date-time"),
            "disabled_reason": _nullable("string"),
            "previous_secret_expires_at": _nullable(
                "string",
                format="date-time",
                description="Until then each delivery is also signed with the previous secret.",
            ),
            "created_at": {"type": "string", "format": "date-time"},
        },
    }
    delivery = {
        "type": "object",
        "required": ["subscription_id", "status", "attempts"],
        "properties": {
            "subscription_id": {"type": "string"},
            "status": {"enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer", "minimum": 0},
            "last_attempt_at": _nullable("string", format="date-time"),
            "last_status_code": _nullable("integer"),
            "last_error": _nullable("string"),
            "next_attempt_at": _nullable("string", format="date-time"),
            "delivered_at": _nullable("string", format="date-time"),
        },
    }
    return {
        "SubscriptionRequest": {
            "type": "object",
            "required": ["url", "events"],
            "additionalProperties": False,
            "properties": {
                "url": {
                    "type": "string",
                    "description": "https only in production; loopback, private, link-local "
                    "and metadata addresses are refused unless EVENT_ALLOW_PRIVATE_URLS.",
                },
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": [*EVENT_TYPES, "*"]},
                    "description": 'Event types, or `["*"]` for all of them.',
                },
                "scope": {
                    "enum": ["own", "all"],
                    "default": "own",
                    "description": "`own`: this key's messages and replies routed to it; "
                    "`all`: every event of the types, including replies no key owns.",
                },
            },
        },
        "Subscription": subscription,
        "SubscriptionWithSecret": {
            "allOf": [
                _ref("Subscription"),
                {
                    "required": ["secret"],
                    "properties": {
                        "secret": {
                            "type": "string",
                            "pattern": "^whsec_",
                            "description": "The Standard Webhooks signing secret; shown only "
                            "when created or rotated.",
                        }
                    },
                },
            ]
        },
        "SubscriptionList": {
            "type": "object",
            "required": ["subscriptions"],
            "properties": {"subscriptions": {"type": "array", "items": _ref("Subscription")}},
        },
        "Delivery": delivery,
        "Event": {
            "type": "object",
            "required": ["id", "type", "timestamp", "data", "status", "deliveries"],
            "properties": {
                "id": {"type": "string", "description": "The `webhook-id` of its deliveries."},
                "type": {"enum": list(EVENT_TYPES)},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "object",
                    "description": "The message as GET /messages/{identifier} shows it, or "
                    "the opt-out change (`number`, `opted_out`, `message_uuid`, `changed_at`).",
                },
                "status": {
                    "enum": ["pending", "delivered", "failed", "none"],
                    "description": "`none`: no subscription takes it (pull feed only).",
                },
                "deliveries": {"type": "array", "items": _ref("Delivery")},
            },
        },
        "EventPage": {
            "type": "object",
            "required": ["events", "next_cursor"],
            "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "next_cursor": _nullable("string"),
            },
        },
        "Redelivery": {
            "type": "object",
            "required": ["id", "status", "deliveries"],
            "properties": {
                "id": {"type": "string"},
                "status": {"enum": ["pending", "none"]},
                "deliveries": {"type": "integer", "minimum": 0},
            },
        },
    }


def event_paths() -> dict[str, Schema]:
    subscription_id = _id_parameter("subscription_id", "The subscription's `id`.")
    event_id = _id_parameter("event_id", "The event's `id` (its `webhook-id`).")
    return {
        "/subscriptions": {
            "post": {
                "operationId": "createSubscription",
                "summary": "Subscribe a URL to this key's events (Standard Webhooks)",
                "security": SECURED,
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("SubscriptionRequest")}},
                },
                "responses": {
                    "201": _json(
                        "Created; the secret is shown only here.",
                        _ref("SubscriptionWithSecret"),
                    ),
                    "400": _problem(400, "The body is not a JSON object."),
                    "415": _problem(415, "The body is not JSON."),
                    "413": _problem(413, "The body is over 64 KiB."),
                    "422": _problem(
                        422, "Invalid or refused URL, events or scope.", "ValidationProblem"
                    ),
                    **_common(401, 503),
                },
            },
            "get": {
                "operationId": "listSubscriptions",
                "summary": "This key's subscriptions (without secrets)",
                "security": SECURED,
                "responses": {
                    "200": _json("The subscriptions.", _ref("SubscriptionList")),
                    **_common(401, 503),
                },
            },
        },
        "/subscriptions/{subscription_id}": {
            "get": {
                "operationId": "getSubscription",
                "summary": "One of this key's subscriptions",
                "security": SECURED,
                "parameters": [subscription_id],
                "responses": {
                    "200": _json("The subscription.", _ref("Subscription")),
                    **_common(401, 404, 503),
                },
            },
            "delete": {
                "operationId": "deleteSubscription",
                "summary": "Stop and forget a subscription (its pending deliveries too)",
                "security": SECURED,
                "parameters": [subscription_id],
                "responses": {"204": {"description": "Deleted."}, **_common(401, 404, 503)},
            },
        },
        "/subscriptions/{subscription_id}/rotate-secret": {
            "post": {
                "operationId": "rotateSubscriptionSecret",
                "summary": "A new secret; the old one also signs for 24 h",
                "security": SECURED,
                "parameters": [subscription_id],
                "responses": {
                    "200": _json("The new secret.", _ref("SubscriptionWithSecret")),
                    **_common(401, 404, 503),
                },
            },
        },
        "/events": {
            "get": {
                "operationId": "listEvents",
                "summary": "This key's events with their delivery state, newest first",
                "description": "Also a pull feed for services that cannot take webhooks. "
                "Unknown query parameters are rejected with 422.",
                "security": SECURED,
                "parameters": [
                    {"name": "type", "in": "query", "schema": {"enum": list(EVENT_TYPES)}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": ["pending", "delivered", "failed", "none"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "The `next_cursor` of the previous page (opaque).",
                        "schema": {"type": "string", "minLength": 1},
                    },
                ],
                "responses": {
                    "200": _json("One page of events.", _ref("EventPage")),
                    "422": _problem(422, "A filter is invalid.", "ValidationProblem"),
                    **_common(401, 503),
                },
            }
        },
        "/events/{event_id}": {
            "get": {
                "operationId": "getEvent",
                "summary": "One of this key's events with its deliveries",
                "security": SECURED,
                "parameters": [event_id],
                "responses": {
                    "200": _json("The event.", _ref("Event")),
                    **_common(401, 404, 503),
                },
            }
        },
        "/events/{event_id}/redeliver": {
            "post": {
                "operationId": "redeliverEvent",
                "summary": "Send the event again to this key's subscriptions that take it",
                "security": SECURED,
                "parameters": [event_id],
                "responses": {
                    "202": _json("Queued again.", _ref("Redelivery")),
                    **_common(401, 404, 503),
                },
            }
        },
    }
