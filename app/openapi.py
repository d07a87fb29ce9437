"""The service's own API as an OpenAPI 3.1 document, served at GET /openapi.json.

Written by hand from DESIGN.md, the contract, rather than generated from the
code: it says what clients and Vonage may rely on. tests/test_openapi.py fails
when a route is added or removed here but not in the app (or the reverse), and
schemathesis checks that real answers match what is written here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.errors import MAX_ERRORS

bp = Blueprint("openapi", __name__)

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
E164_PATTERN = r"^\+?[1-9][0-9]{6,14}$"
# What a caller may type: `+33 6 12 34 56 78`, `0033…`, `+1 (415) 555-0100`.
NUMBER_INPUT_PATTERN = r"^(\+|00)?[1-9][0-9 ().\-\u00a0]{6,40}$"
MESSAGE_STATUSES = [
    "pending",
    "unknown",
    "failed",
    "submitted",
    "delivered",
    "rejected",
    "undeliverable",
    "read",
    "received",
]

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_: str, **constraints: Any) -> Schema:
    return {"type": [type_, "null"], **constraints}


def _header(description: str, *, required: bool = False) -> Schema:
    return {"description": description, "required": required, "schema": {"type": "string"}}


RETRY_AFTER = _header("Seconds to wait before trying again.", required=True)
RETRY_AFTER_OPTIONAL = _header("Seconds to wait before trying again, when known.")


def _json(description: str, schema: Schema, **extra: Any) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _problem(
    status: int,
    description: str,
    *,
    schema: str = "Problem",
    headers: dict[str, Schema] | None = None,
) -> Schema:
    """An RFC 9457 problem answer whose `status` member repeats the HTTP status."""
    body = {"allOf": [_ref(schema), {"properties": {"status": {"const": status}}}]}
    response: Schema = {"description": description, "content": {PROBLEM_JSON: {"schema": body}}}
    if headers:
        response["headers"] = headers
    return response


def _schemas() -> dict[str, Schema]:
    field_error = {
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    }
    problem = {
        "type": "object",
        "description": "RFC 9457 problem details. Extension members may be added.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {
                "type": "string",
                "description": "`about:blank`, or `urn:sms-service:problem:<name>` "
                "(`validation`, `opted-out`, `idempotency-key-reused`, `daily-limit`, ...).",
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": _ref("FieldError"),
                "maxItems": MAX_ERRORS,
                "description": f"At most {MAX_ERRORS} entries; `errors_omitted` counts the rest.",
            },
            "errors_omitted": {"type": "integer", "minimum": 1},
            "id": {
                "type": "string",
                "description": "The service's id for a message Vonage may have accepted "
                "(502 and 504 with type `vonage-outcome-unknown`).",
            },
        },
    }
    validation_problem = {
        "allOf": [
            _ref("Problem"),
            {
                "required": ["errors"],
                "properties": {"errors": {"type": "array", "minItems": 1}},
            },
        ]
    }
    send_request = {
        "type": "object",
        "required": ["to", "text"],
        "additionalProperties": False,
        "properties": {
            "to": {
                "type": "string",
                "pattern": NUMBER_INPUT_PATTERN,
                "description": "A valid phone number in international form: `+14155550100`, "
                "`14155550100`, `0014155550100`, spaces, dashes, dots and parentheses allowed, "
                "a trunk 0 after the country code ignored. Stored, answered and compared in one "
                "canonical E.164 form (digits, no `+`). Premium-rate, shared-cost, pager, "
                "personal and international-network numbers are refused "
                "(`destination-not-allowed`), as are countries outside "
                "`SEND_SMS_ALLOWED_COUNTRIES` or in `SEND_SMS_BLOCKED_COUNTRIES`.",
            },
            "text": {
                "type": "string",
                "minLength": 1,
                "description": "NFC-normalised and stripped of control characters (newlines "
                "kept); must be non-empty after that and at most `SMS_MAX_LENGTH` characters "
                "(default 1600).",
            },
            "client_ref": _nullable(
                "string", maxLength=100, description="Stored and returned; never sent to Vonage."
            ),
        },
    }
    send_accepted = {
        "type": "object",
        "required": ["id", "message_uuid", "to", "from", "status", "segments", "encoding"],
        "properties": {
            "id": {"type": "string", "description": "The service's own id for the message."},
            "message_uuid": {"type": "string", "description": "Vonage's id for the message."},
            "to": {"type": "string", "pattern": r"^[1-9][0-9]{6,14}$"},
            "from": {"type": "string"},
            "status": {"const": "submitted"},
            "segments": {"type": "integer", "minimum": 1},
            "encoding": {"enum": ["GSM-7", "UCS-2"]},
            "client_ref": _nullable("string", maxLength=100),
        },
    }
    timestamp = {"type": "string", "format": "date-time"}
    message = {
        "type": "object",
        "required": [
            "id",
            "message_uuid",
            "direction",
            "from",
            "to",
            "text",
            "status",
            "segments",
            "encoding",
            "client_ref",
            "error",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": _nullable(
                "string", description="Null for a message known only from status webhooks."
            ),
            "message_uuid": _nullable("string", description="Null until Vonage accepts it."),
            "direction": {"enum": ["inbound", "outbound"]},
            "from": _nullable("string"),
            "to": _nullable("string"),
            "text": _nullable("string"),
            "status": {
                "type": "string",
                "description": f"One of {', '.join(MESSAGE_STATUSES)}; never moves backwards.",
            },
            "segments": _nullable("integer"),
            "encoding": {"enum": ["GSM-7", "UCS-2", None]},
            "client_ref": _nullable("string"),
            "error": _nullable("object"),
            "created_at": timestamp,
            "updated_at": timestamp,
        },
    }
    status_event = {
        "type": "object",
        "required": [
            "status",
            "timestamp",
            "error",
            "price",
            "currency",
            "segments",
            "received_at",
        ],
        "properties": {
            "status": {"type": "string"},
            "timestamp": {"type": ["string", "null"], "format": "date-time"},
            "error": _nullable("object"),
            "price": _nullable("string"),
            "currency": _nullable("string"),
            "segments": _nullable("integer"),
            "received_at": timestamp,
        },
    }
    message_with_events = {
        "allOf": [
            _ref("Message"),
            {
                "required": ["events"],
                "properties": {"events": {"type": "array", "items": _ref("StatusEvent")}},
            },
        ]
    }
    message_page = {
        "type": "object",
        "required": ["messages", "next_cursor"],
        "properties": {
            "messages": {"type": "array", "items": _ref("Message"), "maxItems": 200},
            "next_cursor": _nullable("string", description="Pass as `cursor` for the next page."),
        },
    }
    vonage_error = {
        "type": "object",
        "description": "Vonage's error, with its numeric code in `title`.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
    }
    inbound_message = {
        "type": "object",
        "description": "An inbound SMS, Vonage Messages API webhook v1. Other fields are ignored.",
        "required": ["message_uuid", "from", "to"],
        "properties": {
            "channel": {"const": "sms"},
            "message_type": {"const": "text"},
            "message_uuid": {"type": "string", "minLength": 1, "maxLength": 64},
            "from": {"type": "string", "minLength": 1, "maxLength": 32},
            "to": {"type": "string", "minLength": 1, "maxLength": 32},
            "timestamp": timestamp,
            "text": {"type": "string"},
            "sms": {
                "type": "object",
                "properties": {
                    "num_messages": {"type": "string", "pattern": "^[0-9]+$"},
                    "keyword": {"type": "string"},
                },
            },
            "usage": {
                "type": "object",
                "properties": {"price": {"type": "string"}, "currency": {"type": "string"}},
            },
        },
    }
    message_status = {
        "type": "object",
        "description": "A delivery status event, Vonage Messages API webhook v1.",
        "required": ["message_uuid", "status", "timestamp"],
        "properties": {
            "message_uuid": {"type": "string", "minLength": 1, "maxLength": 64},
            "status": {
                "type": "string",
                "minLength": 1,
                "maxLength": 20,
                "examples": ["submitted", "delivered", "rejected", "undeliverable", "read"],
            },
            "timestamp": timestamp,
            "to": {"type": "string"},
            "from": {"type": "string"},
            "channel": {"const": "sms"},
            "client_ref": {"type": "string", "minLength": 1, "maxLength": 100},
            "error": _ref("VonageError"),
            "usage": {
                "type": "object",
                "properties": {"price": {"type": "string"}, "currency": {"type": "string"}},
            },
            "sms": {
                "type": "object",
                "properties": {"count_total": {"type": "string", "pattern": "^[0-9]+$"}},
            },
        },
    }
    return {
        "FieldError": field_error,
        "Problem": problem,
        "ValidationProblem": validation_problem,
        "SendRequest": send_request,
        "SendAccepted": send_accepted,
        "Message": message,
        "StatusEvent": status_event,
        "MessageWithEvents": message_with_events,
        "MessagePage": message_page,
        "VonageError": vonage_error,
        "InboundMessage": inbound_message,
        "MessageStatus": message_status,
        "WebhookAck": {
            "type": "object",
            "required": ["status", "duplicate"],
            "properties": {
                "status": {"const": "ok"},
                "duplicate": {"type": "boolean", "description": "Already stored; nothing new."},
            },
        },
        "Erasure": {
            "type": "object",
            "required": [
                "number",
                "messages_erased",
                "events_erased",
                "idempotency_keys_erased",
                "opt_out_kept",
            ],
            "properties": {
                "number": {"type": "string", "description": "The number as stored."},
                "messages_erased": {"type": "integer", "minimum": 0},
                "events_erased": {"type": "integer", "minimum": 0},
                "idempotency_keys_erased": {"type": "integer", "minimum": 0},
                "opt_out_kept": {"type": "boolean"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}, "database": {"const": "ok"}},
        },
    }


UNAUTHORIZED = _problem(
    401,
    "No API key, or not one of `API_KEYS`.",
    headers={"WWW-Authenticate": _header('`Bearer realm="sms"`', required=True)},
)
DEPENDENCY_DOWN = _problem(
    503, "The database does not answer.", headers={"Retry-After": RETRY_AFTER_OPTIONAL}
)


def _send_sms() -> Schema:
    return {
        "operationId": "sendSms",
        "summary": "Send one SMS through Vonage",
        "security": [{"apiKey": []}],
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "The same key with the same body within 24 h returns the first "
                "answer again and sends nothing.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": _ref("SendRequest"),
                    "example": {"to": "+14155550100", "text": "Hello", "client_ref": "order-42"},
                }
            },
        },
        "responses": {
            "202": _json("Vonage accepted the message.", _ref("SendAccepted")),
            "400": _problem(400, "The body is not a JSON object."),
            "401": UNAUTHORIZED,
            "409": _problem(
                409,
                "A request with this Idempotency-Key is still in flight.",
                headers={"Retry-After": RETRY_AFTER},
            ),
            "413": _problem(413, "The body is over 64 KiB."),
            "415": _problem(415, "The body is not JSON."),
            "422": _problem(
                422,
                "Validation failed (`errors` lists each field, at most 20; "
                "`errors_omitted` counts the rest), the recipient opted out (`opted-out`), "
                "the destination is refused (`destination-not-allowed`), or the "
                "Idempotency-Key was used with another body.",
            ),
            "429": _problem(
                429,
                "Over the per-key rate limit, or the daily cap is reached (`daily-limit`).",
                headers={"Retry-After": RETRY_AFTER},
            ),
            "502": _problem(
                502,
                "Vonage refused the message (`vonage-rejected`), or failed in a way that may "
                "have sent it (`vonage-outcome-unknown`, with the message's `id`).",
            ),
            "503": _problem(
                503,
                "Vonage is not configured or unreachable, or no send slot is free.",
                headers={"Retry-After": RETRY_AFTER_OPTIONAL},
            ),
            "504": _problem(
                504, "Vonage timed out; the message may have been sent (`id` names it)."
            ),
        },
    }


def _list_messages() -> Schema:
    return {
        "operationId": "listMessages",
        "summary": "Messages, newest first, in pages",
        "description": "Unknown query parameters are rejected with 422.",
        "security": [{"apiKey": []}],
        "parameters": [
            {
                "name": "direction",
                "in": "query",
                "schema": {"enum": ["inbound", "outbound"]},
            },
            {
                "name": "number",
                "in": "query",
                "description": "Either party: a phone number however written (matched in "
                "canonical E.164 form; a `+` must be sent as `%2B`), a short code or an "
                "alphanumeric sender ID.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 64},
            },
            {"name": "status", "in": "query", "schema": {"enum": MESSAGE_STATUSES}},
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
            "200": _json("One page of messages.", _ref("MessagePage")),
            "401": UNAUTHORIZED,
            "422": _problem(422, "A filter is invalid.", schema="ValidationProblem"),
            "503": DEPENDENCY_DOWN,
        },
    }


def _get_message() -> Schema:
    return {
        "operationId": "getMessage",
        "summary": "One message with its status history",
        "security": [{"apiKey": []}],
        "parameters": [
            {
                "name": "identifier",
                "in": "path",
                "required": True,
                "description": "Vonage's `message_uuid` or the service's own `id`.",
                "schema": {"type": "string", "minLength": 1},
            }
        ],
        "responses": {
            "200": _json("The message and its events.", _ref("MessageWithEvents")),
            "401": UNAUTHORIZED,
            "404": _problem(404, "Nothing at all is known of that id."),
            "503": DEPENDENCY_DOWN,
        },
    }


def _erase_number() -> Schema:
    return {
        "operationId": "eraseNumber",
        "summary": "Erase everything kept about one number (GDPR erasure)",
        "description": "Deletes every message to or from the number, their status events "
        "and stored Idempotency-Key answers naming it. An opt-out is kept, so the number "
        "cannot be texted again by mistake. Repeating the call erases nothing more.",
        "security": [{"apiKey": []}],
        "parameters": [
            {
                "name": "number",
                "in": "path",
                "required": True,
                "description": "A phone number however written, a short code or a sender ID.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 64},
            }
        ],
        "responses": {
            "200": _json("What was erased.", _ref("Erasure")),
            "401": UNAUTHORIZED,
            "422": _problem(422, "Not a number or sender ID.", schema="ValidationProblem"),
            "503": DEPENDENCY_DOWN,
        },
    }


def _webhook(operation_id: str, summary: str, body_schema: str) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": "Called by Vonage. Answered 200 only once the event is stored; Vonage "
        'retries 429 and 5xx answers only, so 503 means "send it again".',
        "security": [{"vonageSignature": []}],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(body_schema)}}},
        "responses": {
            "200": _json("Stored, or already stored (`duplicate`).", _ref("WebhookAck")),
            "400": _problem(400, "A signed body that is not a JSON object."),
            "401": _problem(
                401, "A bad token, a wrong `payload_hash`, or an `iat` outside the window."
            ),
            "413": _problem(413, "The body is over 64 KiB."),
            "422": _problem(
                422, "A signed payload without the fields it needs.", schema="ValidationProblem"
            ),
            "503": _problem(
                503,
                "No Authorization header at all (`unsigned-webhook`), the signature secret is "
                "not configured, or the event could not be stored.",
                headers={"Retry-After": RETRY_AFTER_OPTIONAL},
            ),
        },
    }


def _health(operation_id: str, summary: str, *, ready: bool) -> Schema:
    responses = {"200": _json("Healthy.", _ref("Health"))}
    if ready:
        responses["503"] = _problem(503, "The database does not answer.")
    return {"operationId": operation_id, "summary": summary, "security": [], "responses": responses}


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document, as a plain dict."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Two-way SMS service",
            "version": "0.1.0",
            "description": "Send SMS through the Vonage Messages API, receive inbound SMS and "
            "delivery receipts, and read the history. Every error is RFC 9457 "
            "`application/problem+json`.",
        },
        "paths": {
            "/send-sms": {"post": _send_sms()},
            "/messages": {"get": _list_messages()},
            "/messages/{identifier}": {"get": _get_message()},
            "/numbers/{number}": {"delete": _erase_number()},
            "/webhooks/inbound": {
                "post": _webhook("inboundWebhook", "An inbound SMS from Vonage", "InboundMessage")
            },
            "/webhooks/status": {
                "post": _webhook("statusWebhook", "A delivery status from Vonage", "MessageStatus")
            },
            "/health": {"get": _health("health", "Liveness: touches nothing", ready=False)},
            "/health/ready": {
                "get": _health("ready", "Readiness: the database answers", ready=True)
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics of every worker",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json("The OpenAPI 3.1 document.", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of the comma-separated `API_KEYS`, compared in "
                    "constant time.",
                },
                "vonageSignature": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Vonage's signed-webhook JWT: HS256 with "
                    "`VONAGE_SIGNATURE_SECRET` (or `VONAGE_SIGNATURE_SECRET_PREVIOUS` while it "
                    "is rotated); claim `payload_hash` is the SHA-256 hex digest of the raw "
                    "body, `iat` must be within `WEBHOOK_MAX_AGE_SECONDS` and at most a minute "
                    "ahead.",
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(build_spec())
