"""Vonage's real payloads: other channels, v0.1 and odd shapes kept as dead letters, odd JSON.

Payload shapes follow Vonage's own SDK fixtures (vonage-java-sdk InboundMessageTest
and MessageStatusTest) and the Messages API reference.
"""

import json
import time
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.webhooks import events
from tests.support import MESSAGES_URL, auth_headers, count_rows


def v1_inbound(channel="sms", **fields):
    payload = {
        "channel": channel,
        "message_uuid": str(uuid.uuid4()),
        "to": "447700900000",
        "from": "447700900001",
        "timestamp": "2026-11-26T15:43:21Z",
        "message_type": "text",
        "text": "Hello, world!",
    }
    payload.update(fields)
    return payload


def v0_1_inbound():
    return {
        "message_uuid": str(uuid.uuid4()),
        "to": {"type": "sms", "number": "447700900000"},
        "from": {"type": "sms", "number": "447700900001"},
        "timestamp": "2026-11-26T15:43:21.000Z",
        "direction": "inbound",
        "message": {"content": {"type": "text", "text": "Hello"}},
    }


def v0_1_status(message_uuid):
    return {
        "message_uuid": message_uuid,
        "to": {"type": "sms", "number": "447700900000"},
        "from": {"type": "sms", "number": "447700900001"},
        "timestamp": "2026-11-26T15:43:21.000Z",
        "status": "delivered",
        "usage": {"currency": "EUR", "price": "0.0333"},
    }


def rows(app, query, **params):
    with app.extensions["db"].connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(query), params)]


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- Other channels ----------------------------------------------------------------------------


def test_whatsapp_text_is_kept_with_its_channel(app, client, signed_webhook):
    payload = v1_inbound("whatsapp", profile={"name": "Jane Smith"})

    response = signed_webhook("/webhooks/inbound", payload)

    assert response.status_code == 200
    message = client.get(f"/messages/{payload['message_uuid']}", headers=auth_headers()).json
    assert (message["channel"], message["message_type"], message["text"]) == (
        "whatsapp",
        "text",
        "Hello, world!",
    )
    assert message["segments"] is None


def test_whatsapp_stop_never_opts_the_number_out_of_sms(app, signed_webhook, send, vonage_api):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)
    signed_webhook(
        "/webhooks/inbound", v1_inbound("whatsapp", text="STOP", **{"from": "14155550100"})
    )

    response = send({"to": "+14155550100", "text": "Your code is 1234"})

    assert response.status_code == 202
    assert count_rows(app, "opt_outs") == 0
    assert len(vonage_api.calls) == 1


def test_sms_stop_still_opts_out(app, signed_webhook):
    signed_webhook("/webhooks/inbound", v1_inbound("sms", text="STOP", **{"from": "14155550100"}))
    assert count_rows(app, "opt_outs") == 1


def test_mms_image_without_text_keeps_its_media_url(app, client, signed_webhook):
    payload = v1_inbound(
        "mms", message_type="image", image={"url": "https://example.com/cat.png"}, text=None
    )
    del payload["text"]

    assert signed_webhook("/webhooks/inbound", payload).status_code == 200

    message = client.get(f"/messages/{payload['message_uuid']}", headers=auth_headers()).json
    assert message["channel"] == "mms"
    assert message["message_type"] == "image"
    assert message["media_url"] == "https://example.com/cat.png"
    assert message["text"] is None


def test_messenger_ids_are_kept_as_vonage_writes_them(app, client, signed_webhook):
    payload = v1_inbound("messenger", **{"from": "7654321098765432", "to": "+1234567890"})

    assert signed_webhook("/webhooks/inbound", payload).status_code == 200

    message = client.get(f"/messages/{payload['message_uuid']}", headers=auth_headers()).json
    assert (message["from"], message["to"]) == ("7654321098765432", "+1234567890")


@pytest.mark.parametrize(
    ("channel", "message_type", "content", "text"),
    [
        # vonage-dotnet-sdk ShouldDeserializeWhatsAppReply: a list or reply-button row.
        (
            "whatsapp",
            "reply",
            {"id": "row1", "title": "9am", "description": "Select 9am appointment time"},
            "9am",
        ),
        ("whatsapp", "button", {"payload": "yes-please", "text": "Yes please"}, "Yes please"),
        ("rcs", "reply", {"id": "q1", "title": "Tomorrow"}, "Tomorrow"),
    ],
)
def test_an_interactive_answer_keeps_what_the_user_tapped_as_its_text(
    app, client, signed_webhook, channel, message_type, content, text
):
    payload = v1_inbound(channel, message_type=message_type, **{message_type: content})
    del payload["text"]

    assert signed_webhook("/webhooks/inbound", payload).status_code == 200

    message = client.get(f"/messages/{payload['message_uuid']}", headers=auth_headers()).json
    assert (message["channel"], message["message_type"], message["text"]) == (
        channel,
        message_type,
        text,
    )
    assert count_rows(app, "opt_outs") == 0


@pytest.mark.parametrize("channel", ["rcs", "viber_service"])
def test_rcs_and_viber_are_kept_with_their_channel(app, signed_webhook, channel):
    payload = v1_inbound(channel)
    assert signed_webhook("/webhooks/inbound", payload).status_code == 200
    [row] = rows(app, "SELECT channel FROM messages")
    assert row["channel"] == channel


def test_history_filters_by_channel(app, client, signed_webhook):
    signed_webhook("/webhooks/inbound", v1_inbound("sms"))
    whatsapp = v1_inbound("whatsapp")
    signed_webhook("/webhooks/inbound", whatsapp)

    response = client.get("/messages?channel=whatsapp", headers=auth_headers())

    assert response.status_code == 200
    assert [m["message_uuid"] for m in response.json["messages"]] == [whatsapp["message_uuid"]]
    assert len(client.get("/messages", headers=auth_headers()).json["messages"]) == 2


def test_history_refuses_an_unknown_channel(client):
    response = client.get("/messages?channel=pigeon", headers=auth_headers())
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "channel"


def test_inbound_sms_keeps_usage_origin_and_segments(app, client, signed_webhook):
    payload = v1_inbound(
        usage={"currency": "EUR", "price": "0.0333"},
        origin={"network_code": "23410"},
        sms={"num_messages": "2", "total_count": "2", "keyword": "HELLO"},
    )

    signed_webhook("/webhooks/inbound", payload)

    message = client.get(f"/messages/{payload['message_uuid']}", headers=auth_headers()).json
    assert (message["price"], message["currency"], message["network_code"]) == (
        "0.0333",
        "EUR",
        "23410",
    )
    assert message["segments"] == 2


def test_status_keeps_the_destination_network_and_numeric_error_title(app, client, signed_webhook):
    message_uuid = str(uuid.uuid4())
    payload = {
        "message_uuid": message_uuid,
        "to": "447700900000",
        "from": "447700900001",
        "timestamp": "2026-11-26T14:00:03.010Z",
        "status": "rejected",
        "channel": "sms",
        "error": {
            "type": "https://developer.nexmo.com/api-errors/messages-olympus#1000",
            "title": 1000,
            "detail": "Throttled",
            "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
        },
        "usage": {"currency": "EUR", "price": "0.0333"},
        "sms": {"count_total": "3"},
        "destination": {"network_code": "54321"},
    }

    assert signed_webhook("/webhooks/status", payload).status_code == 200

    [event] = client.get(f"/messages/{message_uuid}", headers=auth_headers()).json["events"]
    assert event["network_code"] == "54321"
    assert (event["price"], event["currency"], event["segments"]) == ("0.0333", "EUR", 3)
    assert event["error"]["title"] == "1000"


def test_whatsapp_read_status_is_kept(app, client, signed_webhook):
    message_uuid = str(uuid.uuid4())
    payload = {
        "message_uuid": message_uuid,
        "to": "447700900000",
        "from": "447700900001",
        "timestamp": "2026-11-26T14:00:00.000Z",
        "status": "read",
        "channel": "whatsapp",
    }
    assert signed_webhook("/webhooks/status", payload).status_code == 200
    message = client.get(f"/messages/{message_uuid}", headers=auth_headers()).json
    assert (message["status"], message["channel"]) == ("read", "whatsapp")


# --- Dead letters: never lose a correctly signed event -----------------------------------------


def test_v0_1_inbound_is_kept_raw_and_answered_200(app, signed_webhook):
    payload = v0_1_inbound()
    before = sample("sms_webhook_dead_letters_total", kind="inbound", reason="webhook_version")

    response = signed_webhook("/webhooks/inbound", payload)

    assert response.status_code == 200
    assert response.json == {"status": "ok", "duplicate": False, "dead_letter": True}
    assert count_rows(app, "messages") == 0
    [letter] = rows(app, "SELECT kind, reason, body FROM dead_letters")
    assert (letter["kind"], letter["reason"]) == ("inbound", "webhook_version")
    assert json.loads(letter["body"]) == payload
    after = sample("sms_webhook_dead_letters_total", kind="inbound", reason="webhook_version")
    assert after == before + 1


def test_a_replayed_dead_letter_is_kept_once(app, signed_webhook):
    payload = v0_1_inbound()
    signed_webhook("/webhooks/inbound", payload)

    again = signed_webhook("/webhooks/inbound", payload)

    assert again.status_code == 200
    assert again.json["duplicate"] is True
    assert count_rows(app, "dead_letters") == 1


def test_v0_1_status_is_not_read_as_v1(app, signed_webhook):
    response = signed_webhook("/webhooks/status", v0_1_status(str(uuid.uuid4())))

    assert response.status_code == 200
    assert count_rows(app, "message_events") == 0
    [letter] = rows(app, "SELECT kind, reason FROM dead_letters")
    assert (letter["kind"], letter["reason"]) == ("status", "webhook_version")


def test_a_status_event_posted_to_inbound_never_becomes_a_message(app, signed_webhook):
    status = {
        "message_uuid": str(uuid.uuid4()),
        "to": "447700900000",
        "from": "447700900001",
        "timestamp": "2026-11-26T14:00:00Z",
        "status": "delivered",
        "channel": "sms",
    }

    response = signed_webhook("/webhooks/inbound", status)

    assert response.status_code == 200
    assert count_rows(app, "messages") == 0
    [letter] = rows(app, "SELECT reason FROM dead_letters")
    assert letter["reason"] == "wrong_kind"


def test_an_inbound_message_posted_to_status_never_becomes_an_event(app, signed_webhook):
    response = signed_webhook("/webhooks/status", v1_inbound())

    assert response.status_code == 200
    assert count_rows(app, "message_events") == 0
    assert count_rows(app, "messages") == 0
    assert rows(app, "SELECT reason FROM dead_letters")[0]["reason"] == "wrong_kind"


def test_dead_letters_are_counted_in_metrics(app, client, signed_webhook):
    before = sample("sms_webhooks_total", kind="inbound", outcome="dead_letter")
    signed_webhook("/webhooks/inbound", v0_1_inbound())

    body = client.get("/metrics", headers=auth_headers()).get_data(as_text=True)

    assert sample("sms_webhooks_total", kind="inbound", outcome="dead_letter") == before + 1
    assert "sms_webhook_dead_letters_total" in body


def test_a_dead_letter_that_cannot_be_stored_is_503(app, signed_webhook, monkeypatch):
    from app.store import dead_letters

    def down(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(dead_letters, "keep", down)

    response = signed_webhook("/webhooks/inbound", v0_1_inbound())

    assert response.status_code == 503


# --- Odd JSON in a signed body -----------------------------------------------------------------


def test_a_lone_surrogate_in_inbound_text_is_kept_not_a_500(app, client, signed_webhook):
    message_uuid = str(uuid.uuid4())
    payload = v1_inbound(message_uuid=message_uuid, text="half HALF an emoji")
    body = json.dumps(payload).replace("HALF", "\\ud83d").encode()

    response = signed_webhook("/webhooks/inbound", None, body=body)

    assert response.status_code == 200
    message = client.get(f"/messages/{message_uuid}", headers=auth_headers()).json
    assert message["text"] == "half \ufffd an emoji"


def test_a_lone_surrogate_in_a_status_error_is_kept(app, client, signed_webhook):
    message_uuid = str(uuid.uuid4())
    payload = {
        "message_uuid": message_uuid,
        "status": "rejected",
        "timestamp": "2026-11-26T14:00:00Z",
        "error": {"title": "1250", "detail": "bad HALF"},
    }
    body = json.dumps(payload).replace("HALF", "\\udc00").encode()

    assert signed_webhook("/webhooks/status", None, body=body).status_code == 200

    message = client.get(f"/messages/{message_uuid}", headers=auth_headers())
    assert message.json["events"][0]["error"]["detail"] == "bad \ufffd"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 5000])
def test_non_standard_numbers_are_kept_raw_and_never_served(app, client, signed_webhook, value):
    message_uuid = str(uuid.uuid4())
    payload = {
        "message_uuid": message_uuid,
        "status": "delivered",
        "timestamp": "2026-11-26T14:00:00Z",
        "usage": {"price": "PRICE", "currency": "EUR"},
    }
    body = json.dumps(payload).replace('"PRICE"', value).encode()

    response = signed_webhook("/webhooks/status", None, body=body)

    assert response.status_code == 200
    assert response.json["dead_letter"] is True
    assert count_rows(app, "message_events") == 0
    assert rows(app, "SELECT reason FROM dead_letters")[0]["reason"] == "odd_json"
    served = client.get("/messages", headers=auth_headers()).get_data(as_text=True)
    assert "NaN" not in served and "Infinity" not in served


# --- Retries must not die of age ---------------------------------------------------------------


def test_a_retry_signed_hours_ago_is_stored(app, signed_webhook):
    """An outage longer than five minutes must not turn Vonage's retries into 401s."""
    payload = v1_inbound()
    response = signed_webhook("/webhooks/inbound", payload, issued_at=time.time() - 6 * 3600)
    assert response.status_code == 200
    assert count_rows(app, "messages") == 1


def test_a_token_from_the_future_is_still_refused(app, signed_webhook):
    response = signed_webhook("/webhooks/inbound", v1_inbound(), issued_at=time.time() + 3600)
    assert response.status_code == 401
    assert count_rows(app, "messages") == 0


def test_iat_nan_is_401(app, client):
    import hashlib

    import jwt

    from tests.support import SIGNATURE_SECRET

    body = json.dumps(v1_inbound()).encode()
    claims = {"iat": float("nan"), "payload_hash": hashlib.sha256(body).hexdigest()}
    token = jwt.encode(claims, SIGNATURE_SECRET, algorithm="HS256")

    response = client.post(
        "/webhooks/inbound",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 401
    assert count_rows(app, "messages") == 0


# --- Operator CLI: list and reprocess ----------------------------------------------------------


def test_dead_letters_list_shows_pending_ones(app, runner, signed_webhook):
    signed_webhook("/webhooks/inbound", v0_1_inbound())

    result = runner.invoke(args=["dead-letters", "list"])

    assert result.exit_code == 0, result.output
    assert "#1 inbound" in result.output
    assert "webhook_version" in result.output


def test_reprocess_after_a_fix_stores_the_event(app, runner, signed_webhook, monkeypatch):
    payload = v1_inbound("whatsapp")
    with monkeypatch.context() as before_the_fix:
        before_the_fix.setattr(events, "CHANNELS", ("sms",))
        assert signed_webhook("/webhooks/inbound", payload).json["dead_letter"] is True
    assert count_rows(app, "messages") == 0

    result = runner.invoke(args=["dead-letters", "reprocess", "--all"])

    assert result.exit_code == 0, result.output
    assert "#1 stored" in result.output
    [message] = rows(app, "SELECT channel, message_uuid FROM messages")
    assert (message["channel"], message["message_uuid"]) == ("whatsapp", payload["message_uuid"])
    [letter] = rows(app, "SELECT outcome, reprocessed_at FROM dead_letters")
    assert letter["outcome"] == "stored" and letter["reprocessed_at"] is not None
    again = runner.invoke(args=["dead-letters", "list"])
    assert "no pending dead letters" in again.output


def test_reprocess_of_what_still_cannot_be_read_keeps_it_and_fails(app, runner, signed_webhook):
    signed_webhook("/webhooks/inbound", v0_1_inbound())

    result = runner.invoke(args=["dead-letters", "reprocess", "1"])

    assert result.exit_code == 1
    assert "still kept: webhook_version" in result.output
    assert count_rows(app, "messages") == 0
    assert rows(app, "SELECT reprocessed_at FROM dead_letters")[0]["reprocessed_at"] is None


def test_reprocess_needs_ids_or_all(runner):
    assert runner.invoke(args=["dead-letters", "reprocess"]).exit_code == 2
    assert runner.invoke(args=["dead-letters", "reprocess", "99"]).exit_code == 2
