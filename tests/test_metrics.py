"""GET /metrics: counters and histograms for sends, webhooks and requests."""

import uuid

import pytest
from prometheus_client import REGISTRY

from app import metrics
from tests.support import API_KEY, MESSAGES_URL, auth_headers

OUTCOMES = (
    "submitted",
    "replayed",
    "rejected",
    "unknown",
    "unavailable",
    "invalid",
    "unauthorized",
    "rate_limited",
    "daily_limit",
    "opted_out",
    "destination_refused",
    "idempotency_conflict",
    "in_flight",
)


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_sends_and_webhooks_are_counted_by_outcome(app, client, send, signed_webhook, vonage_api):
    before_sent = sample("sms_sends_total", outcome="submitted")
    before_invalid = sample("sms_sends_total", outcome="invalid")
    before_stored = sample("sms_webhooks_total", kind="status", outcome="stored")
    before_bad = sample("sms_webhooks_total", kind="inbound", outcome="bad_signature")
    before_unsigned = sample("sms_webhooks_total", kind="inbound", outcome="unsigned")
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)

    sent = send({"to": "+14155550100", "text": "Hi"}).json
    send({"to": "nope", "text": "Hi"})
    status = {
        "message_uuid": sent["message_uuid"],
        "status": "delivered",
        "timestamp": "2026-11-26T12:00:00Z",
    }
    signed_webhook("/webhooks/status", status)
    client.post("/webhooks/inbound", json={}, headers={"Authorization": "Bearer x.y.z"})
    client.post("/webhooks/inbound", json={})

    assert sample("sms_sends_total", outcome="submitted") == before_sent + 1
    assert sample("sms_sends_total", outcome="invalid") == before_invalid + 1
    assert sample("sms_webhooks_total", kind="status", outcome="stored") == before_stored + 1
    assert sample("sms_webhooks_total", kind="inbound", outcome="bad_signature") == before_bad + 1
    assert sample("sms_webhooks_total", kind="inbound", outcome="unsigned") == before_unsigned + 1

    text = client.get("/metrics", headers=auth_headers()).get_data(as_text=True)
    assert "sms_status_events_total" in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/send-sms"' in text
    assert "vonage_send_duration_seconds_count" in text


def test_metrics_need_no_key_and_are_never_rate_limited(make_app):
    client = make_app(SEND_SMS_RATE_LIMIT="1/minute").test_client()
    assert [client.get("/metrics", headers=auth_headers()).status_code for _ in range(3)] == [
        200
    ] * 3
    assert client.get("/metrics", headers=auth_headers()).content_type.startswith("text/plain")


def _vonage_answers(status):
    def arrange(vonage_api):
        body = {"message_uuid": str(uuid.uuid4())} if status == 202 else {"title": "x"}
        vonage_api.post(MESSAGES_URL, json=body, status=status)

    return arrange


@pytest.mark.parametrize(
    ("settings", "arrange", "payload", "key", "outcome"),
    [
        ({}, _vonage_answers(202), {"to": "+14155550100", "text": "Hi"}, None, "submitted"),
        ({}, _vonage_answers(403), {"to": "+14155550100", "text": "Hi"}, None, "rejected"),
        ({}, _vonage_answers(500), {"to": "+14155550100", "text": "Hi"}, None, "unknown"),
        ({}, _vonage_answers(503), {"to": "+14155550100", "text": "Hi"}, None, "unavailable"),
        ({}, None, {"to": "nope", "text": "Hi"}, None, "invalid"),
        ({}, None, {"to": "+14155550100", "text": "Hi"}, "wrong-key", "unauthorized"),
        ({}, None, {"to": "+19005550100", "text": "Hi"}, None, "destination_refused"),
    ],
)
def test_each_send_is_counted_once_by_its_outcome(
    make_app, vonage_api, settings, arrange, payload, key, outcome
):
    client = make_app(**settings).test_client()
    if arrange:
        arrange(vonage_api)
    before = {name: sample("sms_sends_total", outcome=name) for name in OUTCOMES}

    client.post("/send-sms", json=payload, headers=auth_headers(key or API_KEY))

    after = {name: sample("sms_sends_total", outcome=name) for name in OUTCOMES}
    assert {
        name: after[name] - before[name] for name in OUTCOMES if after[name] != before[name]
    } == {outcome: 1}


def test_replays_limits_and_opt_outs_are_counted_by_outcome(make_app, vonage_api, signed_webhook):
    app = make_app(SEND_SMS_DAILY_LIMIT="1", SEND_SMS_RATE_LIMIT="4/minute")
    client = app.test_client()
    _vonage_answers(202)(vonage_api)
    before = {name: sample("sms_sends_total", outcome=name) for name in OUTCOMES}
    keyed = auth_headers(**{"Idempotency-Key": "k1"})

    client.post("/send-sms", json={"to": "+14155550100", "text": "Hi"}, headers=keyed)
    client.post("/send-sms", json={"to": "+14155550100", "text": "Hi"}, headers=keyed)
    client.post("/send-sms", json={"to": "+14155550101", "text": "Hi"}, headers=auth_headers())
    client.post("/send-sms", json={"to": "+14155550101", "text": "Hi"}, headers=auth_headers())
    client.post("/send-sms", json={"to": "+14155550101", "text": "Hi"}, headers=auth_headers())

    after = {name: sample("sms_sends_total", outcome=name) for name in OUTCOMES}
    assert {
        name: after[name] - before[name] for name in OUTCOMES if after[name] != before[name]
    } == {
        "submitted": 1,
        "replayed": 1,
        "daily_limit": 2,
        "rate_limited": 1,
    }


def test_unknown_webhook_status_values_do_not_explode_label_cardinality(app, signed_webhook):
    payload = {
        "message_uuid": str(uuid.uuid4()),
        "status": "x" * 20,
        "timestamp": "2026-11-26T12:00:00Z",
    }
    before = sample("sms_status_events_total", status="other", effect="kept")
    assert signed_webhook("/webhooks/status", payload).status_code == 200
    assert sample("sms_status_events_total", status="other", effect="kept") == before + 1


def test_made_up_methods_routes_and_statuses_add_no_time_series(client):
    """Labels taken from the request as is grew /metrics (and, under gunicorn, the
    multiprocess files) by one series per made-up method: they fold into `other`."""
    before = sample(
        "http_request_duration_seconds_count", route="other", method="other", status="405"
    )
    before_404 = sample(
        "http_request_duration_seconds_count", route="other", method="GET", status="404"
    )

    for index in range(5):
        client.open("/health", method=f"QWERTYUIOP{index}")
    client.get(f"/no-such-route-{uuid.uuid4()}")

    text = client.get("/metrics", headers=auth_headers()).get_data(as_text=True)
    assert "QWERTYUIOP" not in text
    assert "no-such-route" not in text
    assert (
        sample("http_request_duration_seconds_count", route="other", method="other", status="405")
        + sample(
            "http_request_duration_seconds_count", route="/health", method="other", status="405"
        )
        >= before + 5
    )
    assert (
        sample("http_request_duration_seconds_count", route="other", method="GET", status="404")
        == before_404 + 1
    )


@pytest.mark.parametrize(
    ("route", "method", "status", "labels"),
    [
        ("/send-sms", "POST", 202, ("/send-sms", "POST", "202")),
        (None, "QWERTYUIOPAS", 405, ("other", "other", "405")),
        ("/health", "get", 200, ("/health", "other", "200")),
        ("/health", "GET", 299, ("/health", "GET", "other")),
    ],
)
def test_request_labels_come_from_fixed_sets(route, method, status, labels):
    assert metrics.request_labels(route, method, status) == labels


def test_metrics_token_protects_metrics_when_set(make_app):
    token = "metrics-token-0123456789abcdef"
    client = make_app(METRICS_TOKEN=token).test_client()

    refused = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token-0123456789"})
    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert (refused.status_code, wrong.status_code) == (401, 401)
    assert refused.mimetype == "application/problem+json"
    assert "sms_sends_total" not in refused.get_data(as_text=True)
    assert allowed.status_code == 200
    assert "sms_sends_total" in allowed.get_data(as_text=True)


def test_metrics_need_an_api_key_while_no_token_is_set(client):
    """Every route but health and docs needs a key: without METRICS_TOKEN, /metrics
    takes an API key, and is never open."""
    unsent = client.get("/metrics")
    wrong = client.get("/metrics", headers=auth_headers("not-a-key-0123456789abcdef"))
    allowed = client.get("/metrics", headers=auth_headers())

    assert (unsent.status_code, wrong.status_code) == (401, 401)
    assert unsent.mimetype == "application/problem+json"
    assert unsent.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "sms_sends_total" not in unsent.get_data(as_text=True) + wrong.get_data(as_text=True)
    assert allowed.status_code == 200
    assert "sms_sends_total" in allowed.get_data(as_text=True)
