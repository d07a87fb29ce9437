"""JSON schemas of the /subscriptions and /events bodies, merged into /openapi.json."""

from __future__ import annotations

from typing import Any

from app.events.outbox import (
    EVENT_TYPES,
    MESSAGE_RECEIVED,
    MESSAGE_STATUS,
    OPTED_IN,
    OPTED_OUT,
)
from app.events.schemas import EVENT_STATES, SCOPES, WILDCARD

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_: str, **extra: Any) -> Schema:
    return {"type": [type_, "null"], **extra}


def event_schemas() -> dict[str, Schema]:
    subscription = _subscription()
    return {
        "SubscriptionRequest": _subscription_request(),
        "SubscriptionUpdate": _subscription_update(),
        "Subscription": subscription,
        "SubscriptionWithSecret": _with_secret(subscription),
        "SubscriptionList": {
            "type": "object",
            "required": ["subscriptions"],
            "properties": {"subscriptions": {"type": "array", "items": _ref("Subscription")}},
        },
        "Delivery": _delivery(),
        "Event": _event(),
        "EventPage": {
            "type": "object",
            "required": ["events", "next_cursor"],
            "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "next_cursor": _nullable("string"),
            },
        },
        "ContactChange": _contact_change(),
        **{PAYLOADS[event_type]: _payload(event_type) for event_type in EVENT_TYPES},
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


# The body pushed for each event type, by schema name (the OpenAPI document's `webhooks`).
PAYLOADS = {
    MESSAGE_RECEIVED: "MessageReceivedPayload",
    MESSAGE_STATUS: "MessageStatusPayload",
    OPTED_OUT: "ContactOptedOutPayload",
    OPTED_IN: "ContactOptedInPayload",
}


def _payload(event_type: str) -> Schema:
    """`{type, timestamp, data}`: a message's events carry it as GET /messages/{identifier}
    shows it, an opt-out or opt-in the change."""
    data = "ContactChange" if event_type in (OPTED_OUT, OPTED_IN) else "MessageWithEvents"
    return {
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "const": event_type},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": _ref(data),
        },
    }


def _contact_change() -> Schema:
    return {
        "type": "object",
        "description": "A number opted out (it replied STOP) or back in (START).",
        "required": ["number", "opted_out", "message_uuid", "changed_at"],
        "properties": {
            "number": {"type": "string", "description": "Canonical E.164 digits, no `+`."},
            "opted_out": {"type": "boolean"},
            "message_uuid": _nullable(
                "string", description="The inbound message that made the change."
            ),
            "changed_at": {"type": "string", "format": "date-time"},
        },
    }


def _subscription_request() -> Schema:
    return {
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
                "items": {"enum": [*EVENT_TYPES, WILDCARD]},
                "description": 'Event types, or `["*"]` for all of them.',
            },
            "scope": {
                "enum": list(SCOPES),
                "default": "own",
                "description": "`own`: this key's messages and replies routed to it; "
                "`all`: every event of the types, including replies no key owns.",
            },
        },
    }


def _subscription_update() -> Schema:
    fields = _subscription_request()["properties"]
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "url": fields["url"],
            "events": fields["events"],
            "scope": {key: value for key, value in fields["scope"].items() if key != "default"},
            "enabled": {
                "type": "boolean",
                "description": "`false` stops deliveries (those waiting fail, as after a "
                "410); `true` enables it again, e.g. after a 410.",
            },
        },
    }


def _subscription() -> Schema:
    return {
        "type": "object",
        "required": ["id", "url", "events", "scope", "enabled", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"enum": [*EVENT_TYPES, WILDCARD]}},
            "scope": {"enum": list(SCOPES)},
            "enabled": {
                "type": "boolean",
                "description": "False once the endpoint answered 410 or its owner disabled it.",
            },
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


def _with_secret(subscription: Schema) -> Schema:
    """A subscription as created or rotated: the only time its secret is shown."""
    return {
        **subscription,
        "required": [*subscription["required"], "secret"],
        "properties": {
            **subscription["properties"],
            "secret": {
                "type": "string",
                "pattern": "^whsec_",
                "description": "The Standard Webhooks signing secret; shown only when "
                "created or rotated.",
            },
        },
    }


def _delivery() -> Schema:
    return {
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


def _event() -> Schema:
    return {
        "type": "object",
        "required": ["id", "type", "timestamp", "data", "status", "deliveries"],
        "properties": {
            "id": {"type": "string", "description": "The `webhook-id` of its deliveries."},
            "type": {"enum": list(EVENT_TYPES)},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": {
                "anyOf": [_ref("MessageWithEvents"), _ref("ContactChange")],
                "description": "As pushed: the message as GET /messages/{identifier} shows it "
                "(`message.*`), or the opt-out change (`contact.*`).",
            },
            "status": {
                "enum": list(EVENT_STATES),
                "description": "`none`: no subscription takes it (pull feed only).",
            },
            "deliveries": {"type": "array", "items": _ref("Delivery")},
        },
    }
