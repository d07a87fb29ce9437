"""No full phone number, message text, API key, secret or JWT reaches a log line."""

import json
import logging
import re
import sys
import uuid

import pytest
import requests

from app.observability import TextFormatter
from tests.support import API_KEY, MESSAGES_URL, SIGNATURE_SECRET, inbound_payload


def test_a_full_exchange_logs_no_personal_data_or_secrets(
    app, client, send, signed_webhook, vonage_api, capfd, caplog
):
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)
    vonage_api.post(MESSAGES_URL, body=requests.ReadTimeout())
    secret_text = "my PIN is 4711 and I love pancakes"

    send({"to": "+14155550100", "text": secret_text}, headers={"X-Request-ID": "req-abc-123"})
    send({"to": "+14155550100", "text": secret_text})
    send({"to": "+1415555", "text": secret_text})
    inbound = inbound_payload(secret_text, sender="14155550123")
    signed_webhook("/webhooks/inbound", inbound)
    client.post(
        "/webhooks/inbound",
        json=inbound,
        headers={"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"},
    )
    client.get("/messages?number=14155550100", headers={"Authorization": f"Bearer {API_KEY}"})

    captured = capfd.readouterr().err
    lines = [line for line in captured.splitlines() if line.startswith("{")]
    assert lines, "expected JSON log lines on stderr"
    everything = captured + "\n".join(record.getMessage() for record in caplog.records)
    for forbidden in ("14155550100", "14155550123", "pancakes", API_KEY, SIGNATURE_SECRET, "eyJ"):
        assert forbidden not in everything, forbidden
    access = [json.loads(line) for line in lines if '"app.access"' in line]
    assert {"route", "status", "duration_ms", "request_id", "method"} <= set(access[0])
    assert access[0]["request_id"] == "req-abc-123"


def test_request_id_is_echoed_or_generated(client):
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    generated = client.get("/health", headers={"X-Request-ID": "bad id; DROP"}).headers[
        "X-Request-ID"
    ]
    assert generated and generated != "bad id; DROP"


def test_scrub_masks_numbers_jwts_and_bearer_tokens():
    from app.observability import scrub

    assert scrub("to=+14155550100 ok") == "to=********0100 ok"
    assert "eyJ" not in scrub("token eyJhbGciOiJIUzI1NiJ9.eyJpYXQiOjF9.c2ln")
    assert "k3y" not in scrub("Authorization: Bearer k3y")
    assert (
        scrub("id 4e5fb2f9-0dc3-4b6e-99e6-123456789012")
        == "id 4e5fb2f9-0dc3-4b6e-99e6-123456789012"
    )


def test_a_request_id_that_looks_like_a_number_or_a_token_is_replaced(client, capfd):
    for hostile in ("14155550100", "eyJhbGciOiJIUzI1NiJ9.e30.abc", "x" * 129):
        echoed = client.get("/health", headers={"X-Request-ID": hostile}).headers["X-Request-ID"]
        assert echoed != hostile
    assert "14155550100" not in capfd.readouterr().err


def test_an_unexpected_error_is_logged_once_with_its_trace(app, caplog, monkeypatch):
    from app.api import routes

    def explode():
        raise RuntimeError("boom")

    monkeypatch.setattr(routes, "jsonify", lambda **_: explode())
    app.testing = False
    caplog.set_level(logging.ERROR)

    response = app.test_client().get("/health")

    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    traced = [record for record in caplog.records if record.exc_info]
    assert len(traced) == 1
    assert "boom" in str(traced[0].exc_info[1])


TEXT_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) (?P<level>\w+) +"
    r"(?P<logger>[\w.]+) \[(?P<request_id>[^\]]+)\] (?P<message>.*)$"
)


def test_text_lines_show_the_request_and_its_fields(make_app, vonage_api, capfd):
    app = make_app(LOG_FORMAT="text")
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)

    app.test_client().post(
        "/send-sms",
        json={"to": "+14155550100", "text": "pancakes"},
        headers={"Authorization": f"Bearer {API_KEY}", "X-Request-ID": "req-text-1"},
    )

    lines = [line for line in capfd.readouterr().err.splitlines() if "app.access" in line]
    (line,) = lines
    parsed = TEXT_LINE.match(line)
    assert parsed, line
    assert parsed["request_id"] == "req-text-1"
    assert re.match(r"POST /send-sms 202 [\d.]+ms  ", parsed["message"])
    fields = dict(item.split("=", 1) for item in parsed["message"].split("  ", 1)[1].split())
    assert fields["to"] == "*******0100"
    assert {"message_id", "attempts"} <= set(fields)
    assert "14155550100" not in line and "pancakes" not in line and API_KEY not in line


def test_text_lines_for_other_events_keep_their_fields():
    record = logging.LogRecord("app.x", logging.WARNING, __file__, 1, "retrying", None, None)
    record.request_id = "-"
    record.attempt = 2
    record.reason = "Vonage answered 503"

    line = TextFormatter().format(record)

    assert TEXT_LINE.match(line)["message"] == 'retrying  attempt=2 reason="Vonage answered 503"'


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_traceback_carries_no_number_or_token(make_app, monkeypatch, capfd, log_format):
    """An exception's message is written with its trace: a driver error or a
    library's ValueError quoting a number or a token must be scrubbed there too."""
    from app.api import routes

    def explode(**_):
        raise RuntimeError("could not reach 14155550100 with eyJhbGciOiJIUzI1NiJ9.e30.c2ln")

    app = make_app(LOG_FORMAT=log_format)
    app.testing = False
    monkeypatch.setattr(routes, "jsonify", explode)

    response = app.test_client().get("/health")

    assert response.status_code == 500
    logged = capfd.readouterr().err
    assert "RuntimeError: could not reach *******0100 with [jwt]" in logged
    assert "14155550100" not in logged and "eyJ" not in logged


def test_gunicorns_log_records_are_scrubbed_message_and_trace():
    from app.observability import ScrubFilter

    try:
        raise ValueError("bad header from 14155550100")
    except ValueError:
        record = logging.LogRecord(
            "gunicorn.error", logging.WARNING, __file__, 1, "Invalid request: %r", ("14155550100",),
            exc_info=sys.exc_info(),
        )  # fmt: skip

    assert ScrubFilter().filter(record)
    line = logging.Formatter().format(record)

    assert "14155550100" not in line
    assert "Invalid request: '*******0100'" in line
    assert "ValueError: bad header from *******0100" in line


def test_gunicorns_lines_mask_a_number_next_to_a_letter_or_a_hyphen():
    """gunicorn quotes raw request lines: `%2B14155550100` is an encoded +14155550100."""
    from app.observability import ScrubFilter

    record = logging.LogRecord(
        "gunicorn.error", logging.WARNING, __file__, 1,
        "Invalid request line: 'GET /m?number=%2B14155550100 x' header 'X-To-14155550101'",
        None, None,
    )  # fmt: skip

    assert ScrubFilter().filter(record)

    assert "14155550100" not in record.getMessage()
    assert "14155550101" not in record.getMessage()
    assert "%2B*******0100" in record.getMessage()
