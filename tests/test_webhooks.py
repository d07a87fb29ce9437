"""Vonage's webhooks: verification, storage before 200, dedupe, status order."""

import io
import json
import threading
import time
import uuid

import pytest
import requests
from prometheus_client import REGISTRY
from sqlalchemy import text

from tests.support import (
    MESSAGES_URL,
    SIGNATURE_SECRET,
    auth_headers,
    count_rows,
    inbound_payload,
    signed_headers,
    status_payload,
)


def message_status(app, message_uuid):
    with app.extensions["db"].connect() as connection:
        return connection.execute(
            text("SELECT status FROM messages WHERE message_uuid = :u"), {"u": message_uuid}
        ).scalar()


# --- Verification ------------------------------------------------------------------------------


def test_signed_inbound_is_stored_then_acknowledged(app, signed_webhook):
    payload = inbound_payload()
    response = signed_webhook("/webhooks/inbound", payload)
    assert response.status_code == 200
    with app.extensions["db"].connect() as connection:
        row = connection.execute(text("SELECT * FROM messages")).one()._mapping
    assert (row["direction"], row["message_uuid"], row["from_number"], row["text"]) == (
        "inbound",
        payload["message_uuid"],
        "14155550100",
        "Hello there",
    )


@pytest.mark.parametrize("path", ["/webhooks/inbound", "/webhooks/status"])
def test_missing_authorization_is_503_so_vonage_retries(app, client, path):
    response = client.post(path, json=inbound_payload())
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert count_rows(app, "messages") == 0


@pytest.mark.parametrize(
    ("path", "kind"), [("/webhooks/inbound", "inbound"), ("/webhooks/status", "status")]
)
def test_options_is_answered_like_every_other_route_not_as_an_unsigned_webhook(
    app, client, path, kind
):
    labels = {"kind": kind, "outcome": "unsigned"}
    unsigned_before = REGISTRY.get_sample_value("sms_webhooks_total", labels) or 0.0

    response = client.options(path)

    assert response.status_code == 204
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert (REGISTRY.get_sample_value("sms_webhooks_total", labels) or 0.0) == unsigned_before
    assert count_rows(app, "messages") == 0


@pytest.mark.parametrize(
    "authorization", ["Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer", "eyJ0eXAi"]
)
def test_malformed_token_is_401_never_500(app, client, authorization):
    response = client.post(
        "/webhooks/inbound", json=inbound_payload(), headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert count_rows(app, "messages") == 0


def test_wrong_secret_is_401(app, signed_webhook):
    response = signed_webhook(
        "/webhooks/inbound", inbound_payload(), secret="not-the-secret-0123456789abcdef-xx"
    )
    assert response.status_code == 401
    assert count_rows(app, "messages") == 0


def test_tampered_body_is_401(app, client):
    from app.webhooks.signature import sign

    body = json.dumps(inbound_payload()).encode()
    token = sign(body, SIGNATURE_SECRET)
    tampered = body.replace(b"Hello there", b"Hello thefe")
    response = client.post(
        "/webhooks/inbound",
        data=tampered,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert count_rows(app, "messages") == 0


def test_stale_token_is_401(app, signed_webhook):
    response = signed_webhook(
        "/webhooks/status", status_payload("x", "delivered"), issued_at=time.time() - 90_001
    )
    assert response.status_code == 401
    assert count_rows(app, "message_events") == 0


def test_previous_secret_accepted_while_rotating(make_app):

    old = "old-signature-secret-0123456789abcdef"
    app = make_app(VONAGE_SIGNATURE_SECRET_PREVIOUS=old)
    body = json.dumps(inbound_payload()).encode()
    for secret in (old, SIGNATURE_SECRET):
        fresh = body.replace(b'"message_uuid": "', f'"message_uuid": "{secret[:3]}'.encode())
        response = app.test_client().post(
            "/webhooks/inbound",
            data=fresh,
            headers=signed_headers(fresh, secret),
        )
        assert response.status_code == 200
    assert count_rows(app, "messages") == 2


def test_old_secret_rejected_once_rotation_ends(app, signed_webhook):
    response = signed_webhook(
        "/webhooks/inbound", inbound_payload(), secret="old-signature-secret-0123456789abcdef"
    )
    assert response.status_code == 401


def test_no_secret_configured_fails_closed(make_app, signed_webhook):
    app = make_app(VONAGE_SIGNATURE_SECRET="")
    response = app.test_client().post(
        "/webhooks/inbound", json=inbound_payload(), headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 503
    assert count_rows(app, "messages") == 0


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b'{"text": "\xff"}'])
def test_signed_body_that_is_not_utf8_json_is_400(app, signed_webhook, body):
    response = signed_webhook("/webhooks/inbound", None, body=body)
    assert response.status_code == 400
    assert count_rows(app, "messages") == 0
    assert count_rows(app, "dead_letters") == 0


def test_a_signed_body_with_a_byte_order_mark_is_stored_not_refused(app, signed_webhook):
    payload = inbound_payload()
    body = b"\xef\xbb\xbf" + json.dumps(payload).encode()

    response = signed_webhook("/webhooks/inbound", None, body=body)

    assert response.status_code == 200
    with app.extensions["db"].connect() as connection:
        row = connection.execute(text("SELECT * FROM messages")).one()._mapping
    assert (row["message_uuid"], row["text"]) == (payload["message_uuid"], "Hello there")
    assert count_rows(app, "dead_letters") == 0


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null"])
def test_signed_json_that_is_not_an_object_is_kept_as_a_dead_letter(app, signed_webhook, body):
    response = signed_webhook("/webhooks/inbound", None, body=body)
    assert response.status_code == 200
    assert response.json["dead_letter"] is True
    assert count_rows(app, "messages") == 0
    assert count_rows(app, "dead_letters") == 1


def test_body_over_64_kib_is_413(app, signed_webhook):
    payload = inbound_payload(text_body="a" * 70_000)
    response = signed_webhook("/webhooks/inbound", payload)
    assert response.status_code == 413
    assert count_rows(app, "messages") == 0


def test_signed_inbound_without_required_fields_is_kept_as_a_dead_letter(app, signed_webhook):
    """Vonage does not retry a 4xx: a 422 would lose the event for good."""
    response = signed_webhook("/webhooks/inbound", {"text": "hi"})
    assert response.status_code == 200
    assert response.json["dead_letter"] is True
    assert count_rows(app, "messages") == 0
    with app.extensions["db"].connect() as connection:
        reason, detail = connection.execute(text("SELECT reason, detail FROM dead_letters")).one()
    assert reason == "unknown_shape"
    assert all(field in detail for field in ("message_uuid", "from", "to"))


def test_database_down_is_503_never_200(app, signed_webhook, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr("app.webhooks.events.store.insert_inbound", broken)
    response = signed_webhook("/webhooks/inbound", inbound_payload())
    assert response.status_code == 503
    assert count_rows(app, "messages") == 0


def test_webhooks_are_never_rate_limited(make_app):
    app = make_app(SEND_SMS_RATE_LIMIT="1/minute")

    client = app.test_client()
    for _ in range(5):
        body = json.dumps(status_payload(str(uuid.uuid4()), "delivered")).encode()
        response = client.post(
            "/webhooks/status",
            data=body,
            headers=signed_headers(body, SIGNATURE_SECRET),
        )
        assert response.status_code == 200


# --- Inbound storage and opt-outs ----------------------------------------------------------------


def test_redelivered_inbound_is_stored_once(app, signed_webhook):
    payload = inbound_payload()
    assert signed_webhook("/webhooks/inbound", payload).json["duplicate"] is False
    assert signed_webhook("/webhooks/inbound", payload).json["duplicate"] is True
    assert count_rows(app, "messages") == 1


def test_concurrent_duplicate_inbound_deliveries_store_one_row(app):

    body = json.dumps(inbound_payload()).encode()
    statuses = []

    def deliver():
        response = app.test_client().post(
            "/webhooks/inbound",
            data=body,
            headers=signed_headers(body, SIGNATURE_SECRET),
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=deliver) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 24
    assert count_rows(app, "messages") == 1


@pytest.mark.parametrize(
    "word", ["STOP", " stop ", "Unsubscribe", "cancel", "END", "quit", "STOPALL"]
)
def test_stop_words_opt_the_sender_out(app, signed_webhook, send, vonage_api, word):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body=word))
    response = send({"to": "+14155550100", "text": "Hi"})
    assert response.status_code == 422
    assert response.json["type"].endswith("opted-out")
    assert len(vonage_api.calls) == 0


def test_vonage_keyword_field_also_opts_out(app, signed_webhook, send):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="Stop sending me these"))
    assert send({"to": "+14155550100", "text": "Hi"}).status_code == 422


@pytest.mark.parametrize("word", ["START", "unstop"])
def test_start_opts_back_in(app, signed_webhook, send, vonage_api, word):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP"))
    signed_webhook("/webhooks/inbound", inbound_payload(text_body=word))
    assert send({"to": "+14155550100", "text": "Hi"}).status_code == 202


def test_start_as_first_word_only_does_not_opt_in(app, signed_webhook, send):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP"))
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="Start time?"))
    assert send({"to": "+14155550100", "text": "Hi"}).status_code == 422


def test_opt_out_is_per_sender(app, signed_webhook, send, vonage_api):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP", sender="14155550101"))
    assert send({"to": "+14155550100", "text": "Hi"}).status_code == 202


# --- Status events -------------------------------------------------------------------------------


def sent_message(send, vonage_api, message_uuid):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": message_uuid}, status=202)
    response = send({"to": "+14155550100", "text": "Hi"})
    assert response.status_code == 202
    return response.json


def test_status_updates_the_message_and_keeps_every_event(
    app, client, send, vonage_api, signed_webhook
):
    sent = sent_message(send, vonage_api, "11111111-0000-4000-8000-000000000001")
    uuid_ = sent["message_uuid"]
    signed_webhook("/webhooks/status", status_payload(uuid_, "submitted", "2026-11-26T12:00:01Z"))
    signed_webhook("/webhooks/status", status_payload(uuid_, "delivered", "2026-11-26T12:00:05Z"))

    message = client.get(f"/messages/{uuid_}", headers=auth_headers()).json
    assert message["status"] == "delivered"
    assert [e["status"] for e in message["events"]] == ["submitted", "delivered"]
    assert message["events"][1]["price"] == "0.0333"
    assert message["events"][1]["currency"] == "EUR"


def test_the_message_takes_vonages_price_and_billed_segments_from_its_events(
    app, client, send, vonage_api, signed_webhook
):
    """The message showed price null and the local segment estimate even after
    Vonage reported what it billed."""
    sent = sent_message(send, vonage_api, "11111111-0000-4000-8000-00000000000a")
    assert (sent["segments"], sent.get("price")) == (1, None)
    uuid_ = sent["message_uuid"]
    delivered = status_payload(uuid_, "delivered", "2026-11-26T12:00:05Z", usage={})
    billed = status_payload(
        uuid_,
        "submitted",
        "2026-11-26T12:00:01Z",
        usage={"currency": "EUR", "price": "0.0666"},
        sms={"count_total": "2"},
    )
    signed_webhook("/webhooks/status", delivered)
    # Arrives late: the status does not move back, the price is still recorded.
    signed_webhook("/webhooks/status", billed)

    message = client.get(f"/messages/{uuid_}", headers=auth_headers()).json
    assert message["status"] == "delivered"
    assert (message["price"], message["currency"], message["segments"]) == ("0.0666", "EUR", 2)
    listed = client.get("/messages", headers=auth_headers()).json
    assert listed["messages"][0]["price"] == "0.0666"


def test_an_event_without_a_price_keeps_the_messages_price(
    app, client, send, vonage_api, signed_webhook
):
    uuid_ = sent_message(send, vonage_api, "11111111-0000-4000-8000-00000000000b")["message_uuid"]
    signed_webhook("/webhooks/status", status_payload(uuid_, "submitted", "2026-11-26T12:00:01Z"))
    later = status_payload(uuid_, "delivered", "2026-11-26T12:00:05Z", usage={})
    signed_webhook("/webhooks/status", later)

    message = client.get(f"/messages/{uuid_}", headers=auth_headers()).json
    assert (message["status"], message["price"], message["currency"]) == (
        "delivered", "0.0333", "EUR",
    )  # fmt: skip
    assert message["segments"] == 1


def test_status_never_moves_backwards(app, send, vonage_api, signed_webhook):
    uuid_ = sent_message(send, vonage_api, "11111111-0000-4000-8000-000000000002")["message_uuid"]
    signed_webhook("/webhooks/status", status_payload(uuid_, "delivered", "2026-11-26T12:00:05Z"))
    signed_webhook("/webhooks/status", status_payload(uuid_, "submitted", "2026-11-26T12:00:01Z"))
    assert message_status(app, uuid_) == "delivered"
    assert count_rows(app, "message_events") == 2


def test_duplicate_status_event_is_stored_once(app, send, vonage_api, signed_webhook):
    uuid_ = sent_message(send, vonage_api, "11111111-0000-4000-8000-000000000003")["message_uuid"]
    payload = status_payload(uuid_, "delivered")
    assert signed_webhook("/webhooks/status", payload).json["duplicate"] is False
    assert signed_webhook("/webhooks/status", payload).json["duplicate"] is True
    assert count_rows(app, "message_events") == 1


def test_rejected_status_keeps_the_error(app, client, send, vonage_api, signed_webhook):
    uuid_ = sent_message(send, vonage_api, "11111111-0000-4000-8000-000000000004")["message_uuid"]
    error = {
        "type": "https://developer.nexmo.com/api-errors/messages-olympus#1320",
        "title": "1320",
        "detail": "Message failed because the number is blacklisted",
        "instance": "abc",
    }
    signed_webhook("/webhooks/status", status_payload(uuid_, "rejected", error=error))
    message = client.get(f"/messages/{uuid_}", headers=auth_headers()).json
    assert message["status"] == "rejected"
    assert message["error"] == error
    assert message["events"][0]["error"]["title"] == "1320"


def test_delivery_clears_the_error_of_an_unknown_outcome(
    app, client, send, vonage_api, signed_webhook
):
    vonage_api.post(MESSAGES_URL, body=requests.ReadTimeout())
    message_id = send({"to": "+14155550100", "text": "Hi"}).json["id"]
    before = client.get(f"/messages/{message_id}", headers=auth_headers()).json

    signed_webhook(
        "/webhooks/status",
        status_payload("22222222-0000-4000-8000-000000000001", "delivered", client_ref=message_id),
    )
    after = client.get(f"/messages/{message_id}", headers=auth_headers()).json

    assert (before["status"], before["error"]["title"]) == ("unknown", "Vonage timed out")
    assert (after["status"], after["error"]) == ("delivered", None)
    assert [event["status"] for event in after["events"]] == ["delivered"]


def test_a_status_this_service_does_not_know_shows_as_unknown(app, client, signed_webhook):
    signed_webhook("/webhooks/status", status_payload("seen-only-in-status", "accepted"))

    message = client.get("/messages/seen-only-in-status", headers=auth_headers()).json
    listed = client.get("/messages?status=accepted", headers=auth_headers())

    assert message["status"] == "unknown"
    assert [event["status"] for event in message["events"]] == ["accepted"]
    assert listed.status_code == 422
    assert count_rows(app, "message_events") == 1


def test_status_for_unknown_message_is_kept_and_visible(app, client, signed_webhook):
    uuid_ = "22222222-0000-4000-8000-000000000001"
    assert signed_webhook("/webhooks/status", status_payload(uuid_, "delivered")).status_code == 200
    response = client.get(f"/messages/{uuid_}", headers=auth_headers())
    assert response.status_code == 200
    assert response.json["status"] == "delivered"
    assert [e["status"] for e in response.json["events"]] == ["delivered"]
    price = response.json["events"][0]["price"]
    assert price is not None
    assert (response.json["price"], response.json["currency"]) == (price, "EUR")


def test_status_that_arrives_before_the_send_returns_is_not_lost(app, send, vonage_api):
    """Vonage's delivery receipt overtakes its own 202: the row must end delivered."""

    message_uuid = "33333333-0000-4000-8000-000000000001"

    def vonage_answers_after_the_webhook(request):
        client_ref = json.loads(request.body)["client_ref"]
        body = json.dumps(status_payload(message_uuid, "delivered", client_ref=client_ref)).encode()
        hook = app.test_client().post(
            "/webhooks/status",
            data=body,
            headers=signed_headers(body, SIGNATURE_SECRET),
        )
        assert hook.status_code == 200
        return 202, {}, json.dumps({"message_uuid": message_uuid})

    vonage_api.add_callback("POST", MESSAGES_URL, callback=vonage_answers_after_the_webhook)
    response = send({"to": "+14155550100", "text": "Hi"})

    assert response.status_code == 202
    assert message_status(app, message_uuid) == "delivered"
    assert count_rows(app, "messages") == 1


def test_status_without_client_ref_before_the_send_returns_is_applied_later(
    app, send, vonage_api, signed_webhook
):
    message_uuid = "33333333-0000-4000-8000-000000000002"
    signed_webhook("/webhooks/status", status_payload(message_uuid, "delivered"))
    sent_message(send, vonage_api, message_uuid)
    assert message_status(app, message_uuid) == "delivered"


def test_status_webhook_settles_an_unknown_send(app, send, vonage_api, signed_webhook):
    import requests

    vonage_api.post(MESSAGES_URL, body=requests.ReadTimeout())
    failed = send({"to": "+14155550100", "text": "Hi"})
    assert failed.status_code == 504
    message_id = failed.json["id"]

    signed_webhook(
        "/webhooks/status",
        status_payload("44444444-0000-4000-8000-000000000001", "delivered", client_ref=message_id),
    )

    with app.extensions["db"].connect() as connection:
        row = connection.execute(
            text("SELECT status, message_uuid FROM messages WHERE id = :id"), {"id": message_id}
        ).one()
    assert tuple(row) == ("delivered", "44444444-0000-4000-8000-000000000001")


def test_signed_status_without_timestamp_is_kept_as_a_dead_letter(app, signed_webhook):
    payload = status_payload("x", "delivered")
    del payload["timestamp"]
    assert signed_webhook("/webhooks/status", payload).status_code == 200
    assert count_rows(app, "message_events") == 0
    assert count_rows(app, "dead_letters") == 1


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "a.b",
        "x" * 5000 + ".e30.c2ln",
        "eyJhbGciOiJIUzUxMiJ9.e30.c2ln",
        "eyJhbGciOiJub25lIn0.e30.",
    ],
)
def test_a_token_of_the_wrong_form_is_refused_before_the_body_is_read(app, client, token):
    body = io.BytesIO(b"{" * 60000)
    response = client.post(
        "/webhooks/inbound",
        input_stream=body,
        content_length=60000,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert body.tell() == 0  # not a byte of the body was read
    assert count_rows(app, "messages") == 0
