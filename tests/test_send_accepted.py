"""POST /send-sms when Vonage accepts: what is sent, answered and stored."""

import json

from tests.support import TO, VONAGE_NUMBER, accepted, stored_message


def test_send_posts_the_exact_message_and_answers_202(app, send, vonage_api):
    accepted(vonage_api, "aaaaaaaa-0000-4000-8000-000000000001")

    response = send({"to": TO, "text": "Hello", "client_ref": "order-42"})

    assert response.status_code == 202
    body = response.get_json()
    assert body == {
        "id": body["id"],
        "message_uuid": "aaaaaaaa-0000-4000-8000-000000000001",
        "to": "14155550100",
        "from": VONAGE_NUMBER,
        "status": "submitted",
        "segments": 1,
        "encoding": "GSM-7",
        "client_ref": "order-42",
    }
    assert len(vonage_api.calls) == 1
    sent = json.loads(vonage_api.calls[0].request.body)
    assert sent == {
        "to": "14155550100",
        "from": VONAGE_NUMBER,
        "text": "Hello",
        "client_ref": body["id"],
        "channel": "sms",
        "message_type": "text",
        "webhook_version": "v1",
    }
    assert vonage_api.calls[0].request.headers["Authorization"].startswith(b"Bearer ey")
    row = stored_message(app, body["id"])
    assert (row["status"], row["message_uuid"], row["client_ref"]) == (
        "submitted",
        "aaaaaaaa-0000-4000-8000-000000000001",
        "order-42",
    )


def test_unicode_text_is_ucs2_with_its_segments(send, vonage_api):
    accepted(vonage_api)
    response = send({"to": TO, "text": "Привет 😀 " * 10})
    assert response.status_code == 202
    assert (response.json["encoding"], response.json["segments"]) == ("UCS-2", 2)


def test_text_is_cleaned_before_sending(send, vonage_api):
    accepted(vonage_api)
    assert send({"to": TO, "text": "  Hi\x00\r\nthere\x1b  "}).status_code == 202
    assert json.loads(vonage_api.calls[0].request.body)["text"] == "Hi\nthere"


def test_json_with_utf8_charset_is_accepted(send, vonage_api):
    accepted(vonage_api)

    response = send(
        data=json.dumps({"to": TO, "text": "Hi"}),
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )

    assert response.status_code == 202
    assert len(vonage_api.calls) == 1
