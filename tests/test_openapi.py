"""The OpenAPI document: valid 3.1, in step with the app's routes, and true of real answers."""

import json

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.api import message_filters, paging
from app.api.schemas import MAX_CLIENT_REF, MAX_IDEMPOTENCY_KEY
from app.events.dispatcher import Dispatcher
from app.events.outbox import EVENT_TYPES
from app.openapi import build_spec
from app.status import ORDER
from tests.receivers import Receiver
from tests.support import (
    OTHER_API_KEY,
    SIGNATURE_SECRET,
    accepted,
    auth_headers,
    inbound_payload,
    status_payload,
)

SPEC_URI = "urn:sms-service:openapi"
JSON = "application/json"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# Headers of the HTTP exchange itself, not of one operation: no client branches on them.
GENERIC_HEADERS = {
    "content-type",
    "content-length",
    "date",
    "server",
    "connection",
    "x-request-id",  # on every answer; the document's description says so
    "content-security-policy",
    "x-content-type-options",
}


@pytest.fixture(scope="module")
def spec():
    return build_spec()


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def assert_conforms(spec, method: str, path: str, response) -> None:
    """`response` has a status, content type, headers and body that `spec` documents."""
    operation = spec["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path} answered undocumented {status}"
    documented = operation["responses"][status]
    for name, header in documented.get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers, f"{status} without its {name} header"
    documented_headers = {name.lower() for name in documented.get("headers", {})}
    undocumented = {
        name
        for name in response.headers.keys()
        if name.lower() not in documented_headers | GENERIC_HEADERS
    }
    assert not undocumented, f"{method} {path} {status} sent undocumented {undocumented}"
    media_type = response.mimetype
    assert media_type in documented["content"], f"{status} answered as {media_type}"
    pointer = _pointer("paths", path, method.lower(), "responses", status, "content", media_type)
    body = response.get_json() if media_type.endswith("json") else response.get_data(as_text=True)
    errors = schema_errors(spec, pointer, body)
    assert not errors, f"{method} {path} {status}: {errors}"


def schema_errors(spec, pointer: str, value) -> list[str]:
    """How `value` breaks the schema at `pointer` (its `schema` member) in `spec`."""
    registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/{pointer}/schema"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]


def openapi_path(rule) -> str:
    path = rule.rule
    for argument in rule.arguments:
        path = path.replace(f"<{argument}>", f"{{{argument}}}")
        for converter in ("string", "int", "path", "uuid", "float", "any"):
            path = path.replace(f"<{converter}:{argument}>", f"{{{argument}}}")
    return path


def test_spec_is_valid_openapi_3_1(spec):
    validate(spec, cls=OpenAPIV31SpecValidator)
    assert spec["openapi"].startswith("3.1.")


def test_spec_is_served_without_auth_as_json(client, spec):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == json.loads(json.dumps(spec))


def test_spec_paths_and_methods_match_the_app_routes(app, spec):
    routes = {
        (openapi_path(rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - IGNORED_METHODS
    }
    documented = {
        (path, method.upper())
        for path, operations in spec["paths"].items()
        for method in operations
    }

    assert sorted(routes - documented) == [], "routes the spec does not describe"
    assert sorted(documented - routes) == [], "spec operations the app does not serve"


def test_spec_limits_agree_with_the_app(spec):
    schemas = spec["components"]["schemas"]
    list_params = {p["name"]: p for p in spec["paths"]["/messages"]["get"]["parameters"]}
    send_params = {p["name"]: p for p in spec["paths"]["/send-sms"]["post"]["parameters"]}

    assert list_params["status"]["schema"] == {"$ref": "#/components/schemas/MessageStatus"}
    assert set(schemas["MessageStatus"]["enum"]) == set(ORDER) | {"received"}
    assert list_params["direction"]["schema"] == {"$ref": "#/components/schemas/Direction"}
    assert schemas["Direction"]["enum"] == list(message_filters.DIRECTIONS)
    assert list_params["limit"]["schema"]["maximum"] == paging.MAX_LIMIT
    assert list_params["limit"]["schema"]["default"] == paging.DEFAULT_LIMIT
    client_ref = schemas["SendRequest"]["properties"]["client_ref"]["anyOf"][0]
    assert client_ref["maxLength"] == MAX_CLIENT_REF
    assert send_params["Idempotency-Key"]["schema"]["maxLength"] == MAX_IDEMPOTENCY_KEY


def _responses(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                yield f"{method.upper()} {path} {status}", status, response


def test_problem_answers_reference_the_problem_schemas_directly(spec):
    for name, status, response in _responses(spec):
        if "application/problem+json" not in response.get("content", {}):
            assert int(status) < 400, f"{name} is an error without a problem body"
            continue
        media = response["content"]["application/problem+json"]
        assert media["schema"]["$ref"] in (
            "#/components/schemas/Problem",
            "#/components/schemas/ValidationProblem",
        ), name
        assert media["example"]["status"] == int(status), name
    validation = spec["components"]["schemas"]["ValidationProblem"]
    assert validation["properties"]["errors"]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }
    assert "allOf" not in json.dumps(spec), "generators cannot merge allOf constraints"


def test_what_clients_branch_on_has_a_named_schema(spec):
    schemas = spec["components"]["schemas"]
    status_ref = {"$ref": "#/components/schemas/MessageStatus"}
    error_ref = {"$ref": "#/components/schemas/MessageError"}

    assert schemas["Message"]["properties"]["status"] == status_ref
    assert schemas["MessageWithEvents"]["properties"]["status"] == status_ref
    for holder in ("Message", "StatusEvent"):
        assert {"$ref": error_ref["$ref"]} in schemas[holder]["properties"]["error"]["anyOf"]
    assert set(schemas["MessageError"]["required"]) == {"type", "title", "detail", "instance"}
    assert "client_ref" in schemas["SendAccepted"]["required"]
    next_cursor = schemas["MessagePage"]["properties"]["next_cursor"]["anyOf"][0]
    cursor = {p["name"]: p for p in spec["paths"]["/messages"]["get"]["parameters"]}["cursor"]
    assert next_cursor == cursor["schema"]


def test_every_operation_is_tagged_and_served_from_the_root(spec):
    tags = {tag["name"] for tag in spec["tags"]}
    operations = [op for ops in spec["paths"].values() for op in ops.values()]

    assert tags == {"messages", "events", "vonage-webhooks", "operations"}
    assert all(len(op["tags"]) == 1 and op["tags"][0] in tags for op in operations)
    assert spec["servers"] == [{"url": "/", "description": "The host serving this document."}]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["info"]["contact"]["name"]
    assert "license" not in spec["info"], "the repository has no licence file to name"


def test_send_answers_match_the_spec(client, spec, vonage_api):
    accepted(vonage_api)
    headers = auth_headers()

    plain = client.post(
        "/send-sms", json={"to": "+14155550100", "text": "Grüße €"}, headers=headers
    )
    unicode = client.post(
        "/send-sms",
        json={"to": "14155550100", "text": "Привет", "client_ref": "r-1"},
        headers={**headers, "Idempotency-Key": "key-1"},
    )
    invalid = client.post("/send-sms", json={"text": ""}, headers=headers)
    unauthorized = client.post("/send-sms", json={"to": "+14155550100", "text": "Hi"})
    not_object = client.post("/send-sms", json=[1], headers=headers)
    not_json = client.post("/send-sms", data="to=1", headers=headers)
    too_big = client.post("/send-sms", json={"text": "x" * 70_000}, headers=headers)

    statuses = [
        r.status_code for r in (plain, unicode, invalid, unauthorized, not_object, not_json)
    ]
    assert statuses + [too_big.status_code] == [202, 202, 422, 401, 400, 415, 413]
    for response in (plain, unicode, invalid, unauthorized, not_object, not_json, too_big):
        assert_conforms(spec, "POST", "/send-sms", response)


def test_rate_limited_send_matches_the_spec(make_app, spec, vonage_api):
    accepted(vonage_api)
    client = make_app(SEND_SMS_RATE_LIMIT="1/minute").test_client()
    body = {"to": "+14155550100", "text": "Hi"}

    client.post("/send-sms", json=body, headers=auth_headers())
    limited = client.post("/send-sms", json=body, headers=auth_headers())

    assert limited.status_code == 429
    assert_conforms(spec, "POST", "/send-sms", limited)


def test_history_answers_match_the_spec(client, spec, vonage_api, signed_webhook):
    accepted(vonage_api)
    sent = client.post(
        "/send-sms", json={"to": "+14155550100", "text": "Hi"}, headers=auth_headers()
    ).get_json()
    signed_webhook(
        "/webhooks/status",
        {
            "message_uuid": sent["message_uuid"],
            "status": "rejected",
            "timestamp": "2025-01-01T00:00:00.000Z",
            "error": {"type": "https://x", "title": "1320", "detail": "no", "instance": "i"},
            "usage": {"price": "0.0333", "currency": "EUR"},
            "sms": {"count_total": "1"},
        },
    )
    signed_webhook(
        "/webhooks/status",
        {"message_uuid": "only-seen-in-a-status", "status": "delivered", "timestamp": "2025-01-01"},
    )
    signed_webhook(
        "/webhooks/inbound",
        {"message_uuid": "in-1", "from": "14155550100", "to": "14155550199", "text": "STOP"},
    )

    listed = client.get("/messages?limit=1", headers=auth_headers())
    second_page = client.get(
        f"/messages?limit=1&cursor={listed.get_json()['next_cursor']}", headers=auth_headers()
    )
    filtered = client.get("/messages?direction=outbound&status=rejected", headers=auth_headers())
    bad_filter = client.get("/messages?limit=0&colour=red", headers=auth_headers())
    unauthorized = client.get("/messages")
    by_id = client.get(f"/messages/{sent['id']}", headers=auth_headers())
    by_event_only = client.get("/messages/only-seen-in-a-status", headers=auth_headers())
    unknown = client.get("/messages/never-heard-of-it", headers=auth_headers())

    assert [listed.status_code, second_page.status_code, filtered.status_code] == [200] * 3
    assert len(filtered.get_json()["messages"]) == 1
    assert [bad_filter.status_code, unauthorized.status_code] == [422, 401]
    assert [by_id.status_code, by_event_only.status_code, unknown.status_code] == [200, 200, 404]
    assert by_event_only.get_json()["id"] is None
    for response in (listed, second_page, filtered, bad_filter, unauthorized):
        assert_conforms(spec, "GET", "/messages", response)
    for response in (by_id, by_event_only, unknown):
        assert_conforms(spec, "GET", "/messages/{identifier}", response)


def test_webhook_answers_match_the_spec(client, spec, signed_webhook):
    inbound = {"message_uuid": "in-2", "from": "14155550100", "to": "14155550199", "text": "Hi"}

    stored = signed_webhook("/webhooks/inbound", inbound)
    duplicate = signed_webhook("/webhooks/inbound", inbound)
    wrong_secret = signed_webhook("/webhooks/inbound", inbound, secret="not-" + SIGNATURE_SECRET)
    unsigned = client.post("/webhooks/inbound", json=inbound)
    not_json = signed_webhook("/webhooks/status", None, body=b"not json")
    missing_fields = signed_webhook("/webhooks/status", {"status": "delivered"})

    answers = (stored, duplicate, wrong_secret, unsigned)
    assert [r.status_code for r in answers] == [200, 200, 401, 503]
    assert [not_json.status_code, missing_fields.status_code] == [400, 200]
    assert missing_fields.json["dead_letter"] is True
    for response in answers:
        assert_conforms(spec, "POST", "/webhooks/inbound", response)
    for response in (not_json, missing_fields):
        assert_conforms(spec, "POST", "/webhooks/status", response)


def test_health_answers_match_the_spec(client, spec):
    for path in ("/health", "/health/ready", "/metrics", "/openapi.json"):
        response = client.get(path, headers=auth_headers() if path == "/metrics" else {})

        assert response.status_code == 200
        assert_conforms(spec, "GET", path, response)


def test_metrics_behind_a_token_match_the_spec(make_app, spec):
    client = make_app(METRICS_TOKEN="metrics-token-0123456789abcdef").test_client()

    refused = client.get("/metrics", headers=auth_headers())
    allowed = client.get("/metrics", headers=auth_headers("metrics-token-0123456789abcdef"))

    assert [refused.status_code, allowed.status_code] == [401, 200]
    assert_conforms(spec, "GET", "/metrics", refused)
    assert_conforms(spec, "GET", "/metrics", allowed)


def test_subscription_event_and_erasure_answers_match_the_spec(
    client, spec, vonage_api, signed_webhook
):
    accepted(vonage_api)
    body = {"url": "https://example.com/sms-events", "events": ["*"]}

    created = client.post("/subscriptions", json=body, headers=auth_headers())
    location = client.get(created.headers["Location"], headers=auth_headers())
    listed = client.get("/subscriptions", headers=auth_headers())
    rotated = client.post(f"{created.headers['Location']}/rotate-secret", headers=auth_headers())
    invalid = client.post("/subscriptions", json={"url": "ftp://x"}, headers=auth_headers())
    client.post("/send-sms", json={"to": "+14155550100", "text": "Hi"}, headers=auth_headers())
    signed_webhook("/webhooks/inbound", inbound_payload("Thanks"))
    signed_webhook("/webhooks/inbound", inbound_payload("STOP"))
    events = client.get("/events", headers=auth_headers())
    event_id = events.get_json()["events"][0]["id"]
    event = client.get(f"/events/{event_id}", headers=auth_headers())
    redelivered = client.post(f"/events/{event_id}/redeliver", headers=auth_headers())
    not_yours = client.get(f"/events/{event_id}", headers=auth_headers(OTHER_API_KEY))
    deleted = client.delete(created.headers["Location"], headers=auth_headers())
    gone = client.delete(created.headers["Location"], headers=auth_headers())
    erased = client.delete("/numbers/%2B14155550100", headers=auth_headers())

    assert [created.status_code, location.status_code, deleted.status_code] == [201, 200, 204]
    assert location.get_json()["id"] == created.get_json()["id"]
    assert {event["type"] for event in events.get_json()["events"]} == {
        "message.received",
        "contact.opted_out",
    }
    assert [not_yours.status_code, gone.status_code, invalid.status_code] == [404, 404, 422]
    assert_conforms(spec, "POST", "/subscriptions", created)
    assert_conforms(spec, "POST", "/subscriptions", invalid)
    assert_conforms(spec, "GET", "/subscriptions/{subscription_id}", location)
    assert_conforms(spec, "GET", "/subscriptions", listed)
    assert_conforms(spec, "POST", "/subscriptions/{subscription_id}/rotate-secret", rotated)
    assert_conforms(spec, "GET", "/events", events)
    assert_conforms(spec, "GET", "/events/{event_id}", event)
    assert_conforms(spec, "GET", "/events/{event_id}", not_yours)
    assert_conforms(spec, "POST", "/events/{event_id}/redeliver", redelivered)
    assert_conforms(spec, "DELETE", "/subscriptions/{subscription_id}", gone)
    assert_conforms(spec, "DELETE", "/numbers/{number}", erased)


def test_pushed_events_match_the_documents_webhooks(app, client, spec, vonage_api, signed_webhook):
    """Each event type the dispatcher really delivers: its headers and body as `webhooks` says."""
    vonage_api.add_passthru("http://127.0.0.1")
    accepted(vonage_api)
    with Receiver() as receiver:
        subscription = {"url": receiver.url, "events": ["*"], "scope": "all"}
        client.post("/subscriptions", json=subscription, headers=auth_headers())
        sent = client.post(
            "/send-sms", json={"to": "+14155550100", "text": "Hi"}, headers=auth_headers()
        ).get_json()
        signed_webhook("/webhooks/status", status_payload(sent["message_uuid"], "delivered"))
        signed_webhook("/webhooks/inbound", inbound_payload("STOP"))
        signed_webhook("/webhooks/inbound", inbound_payload("START"))

        Dispatcher(app.extensions["db"], app.extensions["settings"]).run_until_idle()

    assert set(spec["webhooks"]) == set(EVENT_TYPES)
    delivered = {json.loads(request.body)["type"]: request for request in receiver.received}
    assert set(delivered) == set(EVENT_TYPES)
    for event_type, request in delivered.items():
        operation = spec["webhooks"][event_type]["post"]
        for header in operation["parameters"]:
            assert header["in"] == "header" and header["name"] in request.headers, event_type
        assert request.headers["content-type"] in operation["requestBody"]["content"]
        pointer = _pointer("webhooks", event_type, "post", "requestBody", "content", JSON)
        errors = schema_errors(spec, pointer, json.loads(request.body))
        assert not errors, f"{event_type}: {errors}"
