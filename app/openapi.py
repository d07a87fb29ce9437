"""The service's own API as an OpenAPI 3.1 document, served at GET /openapi.json.

Bodies are generated from the pydantic models in app/api/models.py, which take
their limits and value lists from the code that enforces them; paths, status
codes and the RFC 9457 error contract are written here by hand, as README.md's
API section describes them.

To document a route: write a function returning its operation (built with
`_operation`, `_json` and `_problem`) and add it to `paths()`; to document a new
body, add a model to app/api/models.py's COMPONENTS and `_ref` it by name.
tests/test_openapi.py fails when a route is served but not documented (or the
reverse), and schemathesis and a generated client check the document against
real answers.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Blueprint, jsonify

from app.api.models import component_schemas
from app.api.paging import DEFAULT_LIMIT, MAX_LIMIT
from app.api.schemas import JSON_MEDIA_TYPE, MAX_IDEMPOTENCY_KEY
from app.errors import PROBLEM_BASE, PROBLEM_JSON
from app.events.openapi import PAYLOADS, event_schemas
from app.events.outbox import EVENT_TYPES
from app.events.schemas import EVENT_STATES
from app.sms import MAX_ADDRESS, NUMBER_HINT

bp = Blueprint("openapi", __name__)

Schema = dict[str, Any]

MESSAGES, WEBHOOKS, OPERATIONS = "messages", "vonage-webhooks", "operations"
EVENTS = "events"
TAGS = [
    {"name": MESSAGES, "description": "Send SMS and read the history (API key)."},
    {
        "name": EVENTS,
        "description": "Replies, receipts and opt-outs pushed to your service as Standard "
        "Webhooks, and the feed of them (API key).",
    },
    {"name": WEBHOOKS, "description": "Called by Vonage, signed with its JWT; not for clients."},
    {"name": OPERATIONS, "description": "Health, readiness, metrics and this document."},
]
API_KEY = [{"bearerAuth": []}]
VONAGE_SIGNED = [{"vonageSignature": []}]
PUBLIC: list[Schema] = []
METRICS_TOKEN_OR_API_KEY: list[Schema] = [{"metricsToken": []}, {"bearerAuth": []}]

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <key>`, one of the comma-separated `API_KEYS`, "
        "compared in constant time.",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <METRICS_TOKEN>`, when it is set.",
    },
    "vonageSignature": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Vonage's signed-webhook JWT: HS256 with `VONAGE_SIGNATURE_SECRET` (or "
        "`VONAGE_SIGNATURE_SECRET_PREVIOUS` while it is rotated); claim `payload_hash` is the "
        "SHA-256 hex digest of the raw body, `iat` must be within `WEBHOOK_MAX_AGE_SECONDS` "
        "and at most a minute ahead.",
    },
}

INFO = {
    "title": "Two-way SMS service",
    "version": "0.1.0",
    "summary": "Send and receive SMS through the Vonage Messages API.",
    "description": "Send SMS through the Vonage Messages API, receive inbound SMS and "
    "delivery receipts, and read the history. Every error is RFC 9457 "
    "`application/problem+json`. JSON request bodies must be sent as `application/json` "
    "(UTF-8); any other media type is answered 415 and changes nothing. Every answer "
    "carries `X-Request-ID` (the caller's, when it sent a sane one), also in the logs.",
    # No `license`: the repository has no licence file, so none is granted or named here.
    "contact": {"name": "SMS service maintainers"},
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(description: str, *, required: bool = False, type: str = "string") -> Schema:
    return {"description": description, "required": required, "schema": {"type": type}}


RETRY_AFTER = _header("Seconds to wait before trying again.", required=True)
RETRY_AFTER_OPTIONAL = _header("Seconds to wait before trying again, when known.")
REPLAYED = _header(
    "`true` when this answer replays an earlier request with the same Idempotency-Key."
)
# flask-limiter's, on every answer of a rate-limited route; left out only when the
# limit's storage fails after the view has answered.
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header(
        "Requests allowed in the current window of `SEND_SMS_RATE_LIMIT` (per API key).",
        type="integer",
    ),
    "X-RateLimit-Remaining": _header("Requests left in that window.", type="integer"),
    "X-RateLimit-Reset": _header("When the window resets, in Unix seconds.", type="integer"),
}


def _json(description: str, schema: Schema, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {JSON_MEDIA_TYPE: {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _problem(
    status: int,
    description: str,
    *,
    type: str | None = None,
    schema: str = "Problem",
    headers: dict[str, Schema] | None = None,
    **example: Any,
) -> Schema:
    """An RFC 9457 answer: the `Problem` (or `ValidationProblem`) schema as is, and an
    example whose `status` member repeats the HTTP status."""
    example = {
        "type": PROBLEM_BASE + type if type else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        **example,
    }
    response: Schema = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": _ref(schema), "example": example}},
    }
    if headers:
        response["headers"] = headers
    return response


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    security: list[Schema],
    responses: dict[str, Schema],
    **fields: Any,
) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": fields.pop("description", summary + "."),
        "tags": [tag],
        "security": security,
        **fields,
        "responses": responses,
    }


UNAUTHORIZED = _problem(
    401,
    "No API key, or not one of `API_KEYS`.",
    headers={"WWW-Authenticate": _header('`Bearer realm="sms"`', required=True)},
)
DEPENDENCY_DOWN = _problem(
    503,
    "The database does not answer.",
    type="dependency-unavailable",
    headers={"Retry-After": RETRY_AFTER_OPTIONAL},
)
VALIDATION_EXAMPLE = {
    "title": "Validation failed",
    "detail": f"to: must be {NUMBER_HINT}",
    "errors": [{"field": "to", "message": f"must be {NUMBER_HINT}"}],
}


def _send_sms() -> Schema:
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The same key with the same body within 24 h returns the first answer "
        "again and sends nothing; with another body it is 422; while the first is in flight, 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
    }
    body = {"to": "+14155550100", "text": "Hello", "client_ref": "order-42"}
    return _operation(
        "sendSms",
        "Send one SMS through Vonage",
        MESSAGES,
        API_KEY,
        _send_sms_responses(),
        parameters=[idempotency_key],
        requestBody={
            "required": True,
            "content": {JSON_MEDIA_TYPE: {"schema": _ref("SendRequest"), "example": body}},
        },
    )


# What an Idempotency-Key stores and answers again: the 202, a refusal or outcome
# unknown (502), a send interrupted before Vonage had it (503), a timeout (504).
REPLAYABLE = ("202", "502", "503", "504")


def _send_sms_responses() -> dict[str, Schema]:
    """Every answer carries the rate limit's headers; those an Idempotency-Key can replay
    say so."""
    responses = _send_sms_answers()
    for status, response in responses.items():
        replayable = {"Idempotent-Replayed": REPLAYED} if status in REPLAYABLE else {}
        headers = {**RATE_LIMIT_HEADERS, **replayable, **response.get("headers", {})}
        responses[status] = {**response, "headers": headers}
    return responses


def _send_sms_answers() -> dict[str, Schema]:
    return {
        "202": _json(
            "Vonage accepted the message (or, on a replay, the first request's answer).",
            _ref("SendAccepted"),
        ),
        "400": _problem(400, "The body is not a JSON object."),
        "401": UNAUTHORIZED,
        "409": _problem(
            409,
            "A request with this Idempotency-Key is still in flight.",
            type="idempotency-key-in-flight",
            headers={"Retry-After": RETRY_AFTER},
        ),
        "413": _problem(413, "The body is over 64 KiB."),
        "415": _problem(415, "The body is not `application/json` (UTF-8)."),
        "422": _problem(
            422,
            "Validation failed (`validation`, `errors` lists each field), the recipient opted "
            "out (`opted-out`), the destination is refused (`destination-not-allowed`: "
            "premium-rate, shared-cost, pager, personal or international-network numbers, "
            "or a country outside `SEND_SMS_ALLOWED_COUNTRIES` / in "
            "`SEND_SMS_BLOCKED_COUNTRIES`), or the Idempotency-Key was used with another body "
            "(`idempotency-key-reused`).",
            type="validation",
            **VALIDATION_EXAMPLE,
        ),
        "429": _problem(
            429,
            "Over the per-key rate limit, or the daily cap is reached (`daily-limit`).",
            headers={"Retry-After": RETRY_AFTER},
        ),
        "502": _problem(
            502,
            "Vonage refused the message (`vonage-rejected`), or failed in a way that may have "
            "sent it (`vonage-outcome-unknown`, with the message's `id`).",
            type="vonage-rejected",
        ),
        "503": _problem(
            503,
            "Vonage is not configured or unreachable, no send slot is free (`no-send-slot`), "
            "the worker has too many sends in flight (`sends-in-flight`), a backing service "
            "does not answer (`dependency-unavailable`), or the first request with this "
            "Idempotency-Key died before Vonage had the message (`send-interrupted`, nothing "
            "sent).",
            headers={"Retry-After": RETRY_AFTER_OPTIONAL},
        ),
        "504": _problem(
            504,
            "Vonage timed out, or the first request with this Idempotency-Key died while "
            "calling Vonage; the message may have been sent (`id` names it).",
            type="vonage-outcome-unknown",
        ),
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _list_messages() -> Schema:
    parameters = [
        _query("direction", _ref("Direction"), "Only one direction."),
        _query(
            "number",
            {"type": "string", "minLength": 1, "maxLength": 2 * MAX_ADDRESS},
            "Either party: a phone number however written (matched in its canonical E.164 "
            "form; a `+` must be sent as `%2B`), a short code or an alphanumeric sender ID.",
        ),
        _query("status", _ref("MessageStatus"), "Only messages whose status is this."),
        _query("channel", _ref("Channel"), "Only messages of this channel."),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "Messages per page.",
        ),
        _query(
            "cursor",
            {"type": "string", "minLength": 1},
            "The `next_cursor` of the previous page (opaque).",
        ),
    ]
    return _operation(
        "listMessages",
        "Messages, newest first, in pages",
        MESSAGES,
        API_KEY,
        {
            "200": _json("One page of messages.", _ref("MessagePage")),
            "401": UNAUTHORIZED,
            "422": _problem(
                422,
                "A filter is invalid.",
                type="validation",
                schema="ValidationProblem",
                **VALIDATION_EXAMPLE,
            ),
            "503": DEPENDENCY_DOWN,
        },
        description="Unknown query parameters are rejected with 422.",
        parameters=parameters,
    )


def _get_message() -> Schema:
    identifier = _path_parameter("identifier", "Vonage's `message_uuid` or the service's own `id`.")
    return _operation(
        "getMessage",
        "One message with its status history",
        MESSAGES,
        API_KEY,
        {
            "200": _json("The message and its events.", _ref("MessageWithEvents")),
            "401": UNAUTHORIZED,
            "404": _problem(404, "Nothing at all is known of that id."),
            "503": DEPENDENCY_DOWN,
        },
        description="404 only if nothing at all is known of that id: a message seen only in "
        "status webhooks is shown from its events.",
        parameters=[identifier],
    )


def _erase_number() -> Schema:
    number = _path_parameter(
        "number",
        "A phone number however written, a short code or a sender ID.",
        max_length=2 * MAX_ADDRESS,
    )
    return _operation(
        "eraseNumber",
        "Erase everything kept about one number (GDPR erasure)",
        OPERATIONS,
        API_KEY,
        {
            "200": _json("What was erased.", _ref("Erasure")),
            "401": UNAUTHORIZED,
            "422": _problem(
                422,
                "Not a phone number, short code or sender ID.",
                type="validation",
                schema="ValidationProblem",
                **VALIDATION_EXAMPLE,
            ),
            "503": DEPENDENCY_DOWN,
        },
        description="Deletes every message to or from the number (both directions), their "
        "status events and stored Idempotency-Key answers naming it. Its opt-out is kept, so "
        "the number cannot be texted again by mistake. Repeating the call erases nothing more.",
        parameters=[number],
    )


def _webhook(operation_id: str, summary: str, body_schema: str) -> Schema:
    responses = {
        "200": _json(
            "Stored, or already stored (`duplicate`), or signed but not interpretable and kept "
            "raw for an operator (`dead_letter`).",
            _ref("WebhookAck"),
        ),
        "400": _problem(400, "A signed body that is not UTF-8 JSON."),
        "401": _problem(
            401, "A bad token, a wrong `payload_hash`, or an `iat` outside the window."
        ),
        "413": _problem(413, "The body is over 64 KiB."),
        "503": _problem(
            503,
            "No Authorization header at all (`unsigned-webhook`), the signature secret is not "
            "configured, or the event could not be stored (`dependency-unavailable`).",
            type="unsigned-webhook",
            headers={"Retry-After": RETRY_AFTER_OPTIONAL},
        ),
    }
    return _operation(
        operation_id,
        summary,
        WEBHOOKS,
        VONAGE_SIGNED,
        responses,
        description="Called by Vonage. Answered 200 only once the event is stored; Vonage "
        'retries 429 and 5xx answers only, so 503 means "send it again". The body is read '
        "as JSON whatever its Content-Type, so no signed event is refused for its header.",
        requestBody={"required": True, "content": {JSON_MEDIA_TYPE: {"schema": _ref(body_schema)}}},
    )


def _health(operation_id: str, summary: str, *, ready: bool) -> Schema:
    responses = {"200": _json("Healthy.", _ref("Health"))}
    if ready:
        responses["503"] = _problem(
            503, "The database does not take writes.", headers={"Retry-After": RETRY_AFTER}
        )
    return _operation(operation_id, summary, OPERATIONS, PUBLIC, responses)


def _metrics() -> Schema:
    exposition = {
        "description": "Prometheus text exposition format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return _operation(
        "metrics",
        "Prometheus metrics of every worker",
        OPERATIONS,
        METRICS_TOKEN_OR_API_KEY,
        {
            "200": exposition,
            "401": _problem(
                401,
                "`METRICS_TOKEN` (when it is set) or an API key (when it is not) was not sent.",
                headers={"WWW-Authenticate": _header('`Bearer realm="metrics"`', required=True)},
            ),
        },
        description="Takes `Authorization: Bearer <METRICS_TOKEN>` when it is set (a "
        "credential for the scraper that cannot send), otherwise an API key.",
    )


def _openapi() -> Schema:
    document = _json("The OpenAPI 3.1 document.", {"type": "object"})
    return _operation("openapi", "This document", OPERATIONS, PUBLIC, {"200": document})


NOT_YOURS = _problem(404, "No such id among this key's own (another key's is 404 too).")


def _path_parameter(name: str, description: str, max_length: int | None = None) -> Schema:
    schema: Schema = {"type": "string", "minLength": 1}
    if max_length is not None:
        schema["maxLength"] = max_length
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _create_subscription() -> Schema:
    body = {"url": "https://crm.example.com/sms-events", "events": ["*"], "scope": "own"}
    return _operation(
        "createSubscription",
        "Subscribe a URL to this key's events",
        EVENTS,
        API_KEY,
        {
            "201": _json(
                "Created; the secret is shown only here.",
                _ref("SubscriptionWithSecret"),
                headers={"Location": _header("The new subscription's URL.", required=True)},
            ),
            "400": _problem(400, "The body is not a JSON object."),
            "401": UNAUTHORIZED,
            "413": _problem(413, "The body is over 64 KiB."),
            "415": _problem(415, "The body is not `application/json` (UTF-8)."),
            "422": _problem(
                422,
                "Invalid or refused `url` (https only in production; no loopback, private, "
                "link-local or metadata address; no port 0 or IPv6 zone id), unknown "
                "`events`, a bad `scope`, or the key already has 100 subscriptions.",
                type="validation",
                schema="ValidationProblem",
                **VALIDATION_EXAMPLE,
            ),
            "503": DEPENDENCY_DOWN,
        },
        description="Deliveries are Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
        "`webhook-signature`) signed with the returned `secret`.",
        requestBody={
            "required": True,
            "content": {JSON_MEDIA_TYPE: {"schema": _ref("SubscriptionRequest"), "example": body}},
        },
    )


def _subscription_operation(operation_id: str, summary: str, ok: Schema, **fields) -> Schema:
    responses = {**ok, "401": UNAUTHORIZED, "404": NOT_YOURS, "503": DEPENDENCY_DOWN}
    subscription_id = _path_parameter("subscription_id", "The subscription's `id`.")
    return _operation(
        operation_id, summary, EVENTS, API_KEY, responses, parameters=[subscription_id], **fields
    )


def _update_subscription(subscription: Schema) -> Schema:
    return _subscription_operation(
        "updateSubscription",
        "Change a subscription's URL, events or scope, or disable or enable it",
        {
            "200": _json("The subscription as changed.", subscription),
            "400": _problem(400, "The body is not a JSON object."),
            "413": _problem(413, "The body is over 64 KiB."),
            "415": _problem(415, "The body is not `application/json` (UTF-8)."),
            "422": _problem(
                422,
                "No field, an unknown field, or an invalid `url`, `events`, `scope` "
                "or `enabled` (as at creation); nothing is changed.",
                type="validation",
                schema="ValidationProblem",
                **VALIDATION_EXAMPLE,
            ),
        },
        description="The secret is kept. A new `url` takes the deliveries waiting to "
        "retry at once. Disabling settles the deliveries waiting for it as failed; after "
        "enabling, `POST /events/{event_id}/redeliver` queues one again.",
        requestBody={
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {
                    "schema": _ref("SubscriptionUpdate"),
                    "example": {"enabled": True},
                }
            },
        },
    )


def _list_events() -> Schema:
    parameters = [
        _query("type", {"enum": list(EVENT_TYPES)}, "Only events of this type."),
        _query("status", {"enum": list(EVENT_STATES)}, "Only events in this delivery state."),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "Events per page.",
        ),
        _query(
            "cursor",
            {"type": "string", "minLength": 1},
            "The `next_cursor` of the previous page (opaque).",
        ),
    ]
    return _operation(
        "listEvents",
        "This key's events with their delivery state, newest first",
        EVENTS,
        API_KEY,
        {
            "200": _json("One page of events.", _ref("EventPage")),
            "401": UNAUTHORIZED,
            "422": _problem(
                422,
                "A filter is invalid.",
                type="validation",
                schema="ValidationProblem",
                **VALIDATION_EXAMPLE,
            ),
            "503": DEPENDENCY_DOWN,
        },
        description="Also a pull feed for services that cannot take webhooks. Unknown query "
        "parameters are rejected with 422.",
        parameters=parameters,
    )


def _event_operation(operation_id: str, summary: str, ok: Schema) -> Schema:
    responses = {**ok, "401": UNAUTHORIZED, "404": NOT_YOURS, "503": DEPENDENCY_DOWN}
    event_id = _path_parameter("event_id", "The event's `id` (the `webhook-id` of its deliveries).")
    return _operation(operation_id, summary, EVENTS, API_KEY, responses, parameters=[event_id])


def _event_paths() -> dict[str, Schema]:
    subscription = _ref("Subscription")
    return {
        "/subscriptions": {
            "post": _create_subscription(),
            "get": _operation(
                "listSubscriptions",
                "This key's subscriptions, without their secrets",
                EVENTS,
                API_KEY,
                {
                    "200": _json("The subscriptions.", _ref("SubscriptionList")),
                    "401": UNAUTHORIZED,
                    "503": DEPENDENCY_DOWN,
                },
            ),
        },
        "/subscriptions/{subscription_id}": {
            "get": _subscription_operation(
                "getSubscription",
                "One of this key's subscriptions",
                {"200": _json("The subscription.", subscription)},
            ),
            "patch": _update_subscription(subscription),
            "delete": _subscription_operation(
                "deleteSubscription",
                "Stop and forget a subscription, with its pending deliveries",
                {"204": {"description": "Deleted."}},
            ),
        },
        "/subscriptions/{subscription_id}/rotate-secret": {
            "post": _subscription_operation(
                "rotateSubscriptionSecret",
                "A new secret; the old one also signs for 24 h",
                {"200": _json("The new secret.", _ref("SubscriptionWithSecret"))},
            )
        },
        "/events": {"get": _list_events()},
        "/events/{event_id}": {
            "get": _event_operation(
                "getEvent",
                "One of this key's events with its deliveries",
                {"200": _json("The event.", _ref("Event"))},
            )
        },
        "/events/{event_id}/redeliver": {
            "post": _event_operation(
                "redeliverEvent",
                "Send the event again to this key's subscriptions that take its type",
                {"202": _json("Queued again.", _ref("Redelivery"))},
            )
        },
    }


def _standard_webhook_header(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


STANDARD_WEBHOOK_HEADERS = [
    _standard_webhook_header(
        "webhook-id", "The event's `id`, the same on every retry: deduplicate on it."
    ),
    _standard_webhook_header("webhook-timestamp", "This attempt's time, in Unix seconds."),
    _standard_webhook_header(
        "webhook-signature",
        '`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` with the '
        "subscription's secret; for 24 h after a rotation, two space-separated signatures "
        "(new and old). Verifiable with the `standardwebhooks` library.",
    ),
]
WEBHOOK_SUMMARIES = {
    "message.received": "A reply (an inbound message) routed to this key",
    "message.status": "A status change of a message this key sent",
    "contact.opted_out": "A number opted out (it replied STOP)",
    "contact.opted_in": "A number opted back in (it replied START)",
}


def _event_webhook(event_type: str) -> Schema:
    """What the service POSTs to a subscription's URL for one event type."""
    responses = {
        "200": {"description": "Any 2xx: delivered."},
        "410": {"description": "Gone: the subscription is disabled; nothing more is sent."},
        "default": {
            "description": "Anything else, a timeout (10 s) or a refused connection: retried "
            "after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (a longer `Retry-After` is "
            "honoured), then the delivery is `failed`. Redirects are not followed."
        },
    }
    operation_id = "on" + "".join(part.title() for part in event_type.replace(".", "_").split("_"))
    return _operation(
        operation_id,
        WEBHOOK_SUMMARIES[event_type],
        EVENTS,
        PUBLIC,
        responses,
        description=f"`{event_type}`, pushed to each subscription that takes it, at least once "
        "(deduplicate on `webhook-id`), as a Standard Webhooks request.",
        parameters=STANDARD_WEBHOOK_HEADERS,
        requestBody={
            "required": True,
            "content": {JSON_MEDIA_TYPE: {"schema": _ref(PAYLOADS[event_type])}},
        },
    )


def webhooks() -> dict[str, Schema]:
    """The requests the service makes to subscribers, by event type."""
    return {event_type: {"post": _event_webhook(event_type)} for event_type in EVENT_TYPES}


def _index() -> Schema:
    links = _json("Links to the docs page, this document and the health check.", _ref("Index"))
    return _operation("index", "Where to start", OPERATIONS, PUBLIC, {"200": links})


def _docs() -> Schema:
    page = {
        "description": "Swagger UI over this document; its files are served by the app.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    return _operation(
        "docs", "This document as an interactive page", OPERATIONS, PUBLIC, {"200": page}
    )


def paths() -> dict[str, Schema]:
    """Every route the app serves, by path and method."""
    return {
        "/send-sms": {"post": _send_sms()},
        "/messages": {"get": _list_messages()},
        "/messages/{identifier}": {"get": _get_message()},
        "/numbers/{number}": {"delete": _erase_number()},
        "/webhooks/inbound": {
            "post": _webhook(
                "inboundWebhook", "An inbound message from Vonage", "VonageInboundMessage"
            )
        },
        "/webhooks/status": {
            "post": _webhook("statusWebhook", "A delivery status from Vonage", "VonageStatusEvent")
        },
        "/health": {"get": _health("health", "Liveness: touches nothing", ready=False)},
        "/health/ready": {"get": _health("ready", "Readiness: the database answers", ready=True)},
        "/metrics": {"get": _metrics()},
        "/openapi.json": {"get": _openapi()},
        "/": {"get": _index()},
        "/docs": {"get": _docs()},
        **_event_paths(),
    }


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document, as a plain dict."""
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": [{"url": "/", "description": "The host serving this document."}],
        "tags": TAGS,
        "security": API_KEY,
        "paths": paths(),
        "webhooks": webhooks(),
        "components": {
            "schemas": {**component_schemas(), **event_schemas()},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(build_spec())
