"""POST /send-sms against Vonage's HTTP answered by `responses`."""

import json
import threading
import uuid

import pytest
import requests
from sqlalchemy import text
from urllib3.exceptions import NewConnectionError

from tests.conftest import (
    API_KEY,
    MESSAGES_URL,
    OTHER_API_KEY,
    VONAGE_NUMBER,
    auth_headers,
    count_rows,
)

TO = "+14155550100"


def accepted(vonage_api, message_uuid=None):
    """Vonage accepts: a fixed uuid once, or a fresh uuid for every call."""
    if message_uuid:
        vonage_api.post(MESSAGES_URL, json={"message_uuid": message_uuid}, status=202)
        return
    vonage_api.add_callback(
        "POST",
        MESSAGES_URL,
        callback=lambda request: (202, {}, json.dumps({"message_uuid": str(uuid.uuid4())})),
        content_type="application/json",
    )


def stored_message(app, message_id):
    with app.extensions["db"].connect() as connection:
        row = connection.execute(
            text("SELECT * FROM messages WHERE id = :id"), {"id": message_id}
        ).first()
    return row._mapping if row else None


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


def test_503_then_202_is_retried_once(app, send, vonage_api):
    vonage_api.post(MESSAGES_URL, json={"title": "Service Unavailable"}, status=503)
    accepted(vonage_api)

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 202
    assert len(vonage_api.calls) == 2
    assert len(app.config["SLEEPS"]) == 1


def test_connection_refused_is_retried(send, vonage_api):
    refused = requests.ConnectionError(NewConnectionError(None, "Connection refused"))
    vonage_api.post(MESSAGES_URL, body=refused)
    accepted(vonage_api)
    assert send({"to": TO, "text": "Hello"}).status_code == 202
    assert len(vonage_api.calls) == 2


def test_connect_timeout_is_retried(send, vonage_api):
    vonage_api.post(MESSAGES_URL, body=requests.ConnectTimeout())
    accepted(vonage_api)
    assert send({"to": TO, "text": "Hello"}).status_code == 202
    assert len(vonage_api.calls) == 2


def test_429_honours_retry_after(app, send, vonage_api):
    vonage_api.post(
        MESSAGES_URL, json={"title": "Too Many Requests"}, status=429, headers={"Retry-After": "1"}
    )
    accepted(vonage_api)

    assert send({"to": TO, "text": "Hello"}).status_code == 202
    assert len(vonage_api.calls) == 2
    assert app.config["SLEEPS"][0] >= 1


def test_retry_after_beyond_the_budget_is_503_without_another_call(app, send, vonage_api):
    vonage_api.post(
        MESSAGES_URL, json={"title": "Too Many Requests"}, status=429, headers={"Retry-After": "30"}
    )

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert len(vonage_api.calls) == 1
    assert app.config["SLEEPS"] == []


def test_persistent_503_gives_up_within_bounded_attempts(send, vonage_api):
    vonage_api.post(MESSAGES_URL, json={"title": "Service Unavailable"}, status=503)
    response = send({"to": TO, "text": "Hello"})
    assert response.status_code == 503
    assert response.json["type"].endswith("vonage-unavailable")
    assert 2 <= len(vonage_api.calls) <= 5


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_that_may_have_sent_is_never_retried(app, send, vonage_api, status):
    vonage_api.post(MESSAGES_URL, json={"title": "Internal Error"}, status=status)

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 502
    assert response.mimetype == "application/problem+json"
    assert len(vonage_api.calls) == 1
    assert stored_message(app, response.json["id"])["status"] == "unknown"


def test_read_timeout_is_504_never_retried_and_kept_unknown(app, send, vonage_api):
    vonage_api.post(MESSAGES_URL, body=requests.ReadTimeout())

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 504
    assert len(vonage_api.calls) == 1
    assert stored_message(app, response.json["id"])["status"] == "unknown"


def test_json_with_utf8_charset_is_accepted(send, vonage_api):
    accepted(vonage_api)

    response = send(
        data=json.dumps({"to": TO, "text": "Hi"}),
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )

    assert response.status_code == 202
    assert len(vonage_api.calls) == 1


def test_a_failed_send_records_its_error_in_vonages_shape(app, send, vonage_api):
    vonage_api.post(MESSAGES_URL, body=requests.ReadTimeout())

    response = send({"to": TO, "text": "Hello"})
    message = app.test_client().get(f"/messages/{response.json['id']}", headers=auth_headers())

    assert message.json["status"] == "unknown"
    error = message.json["error"]
    assert set(error) == {"type", "title", "detail", "instance"}
    assert error["type"] == "urn:sms-service:problem:vonage-outcome-unknown"
    assert error["title"] == "Vonage timed out"


def test_connection_broken_after_sending_is_502_never_retried(app, send, vonage_api):
    vonage_api.post(MESSAGES_URL, body=requests.ConnectionError("Connection aborted."))
    response = send({"to": TO, "text": "Hello"})
    assert response.status_code == 502
    assert len(vonage_api.calls) == 1
    assert stored_message(app, response.json["id"])["status"] == "unknown"


def test_vonage_refusal_is_502_with_its_reason_and_not_retried(app, send, vonage_api):
    vonage_api.post(
        MESSAGES_URL,
        status=422,
        json={
            "type": "https://developer.nexmo.com/api-errors/messages-olympus#1150",
            "title": "Invalid params",
            "detail": "The value of one or more parameters is invalid.",
            "invalid_parameters": [{"name": "to", "reason": "Number is blocked"}],
        },
    )

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 502
    assert "Number is blocked" in response.json["detail"]
    assert len(vonage_api.calls) == 1
    with app.extensions["db"].connect() as connection:
        statuses = connection.execute(text("SELECT status FROM messages")).scalars().all()
    assert statuses == ["failed"]


def test_vonage_not_configured_is_503_and_stores_nothing(make_app, vonage_api):
    app = make_app(VONAGE_APPLICATION_ID="")
    response = app.test_client().post(
        "/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()
    )
    assert response.status_code == 503
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


# --- Every bad input: a clear problem, nothing stored, nothing sent ---------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "Hi"}, "to"),
        ({"to": TO}, "text"),
        ({"to": 14155550100, "text": "Hi"}, "to"),
        ({"to": "+1 415 555 0100 x12", "text": "Hi"}, "to"),
        ({"to": TO, "text": "\u200b\u200d\ufeff"}, "text"),
        ({"to": TO, "text": "Hi \ud800"}, "text"),
        ({"to": TO, "text": "Hi", "client_ref": "\udfff"}, "client_ref"),
        ({"to": "+999123456789", "text": "Hi"}, "to"),
        ({"to": "not a number", "text": "Hi"}, "to"),
        ({"to": TO, "text": ""}, "text"),
        ({"to": TO, "text": " \x00\x01 \n "}, "text"),
        ({"to": TO, "text": ["Hi"]}, "text"),
        ({"to": TO, "text": "a" * 1601}, "text"),
        ({"to": TO, "text": "Hi", "client_ref": "x" * 101}, "client_ref"),
        ({"to": TO, "text": "Hi", "client_ref": 7}, "client_ref"),
        ({"to": TO, "text": "Hi", "from": "123"}, "from"),
    ],
)
def test_invalid_payload_is_422_and_changes_nothing(app, send, vonage_api, payload, field):
    response = send(payload)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422
    assert problem["type"].endswith("validation")
    assert field in [error["field"] for error in problem["errors"]]
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


def test_text_at_the_configured_limit_is_accepted(make_app, vonage_api):
    app = make_app(SMS_MAX_LENGTH="20")
    accepted(vonage_api)
    client = app.test_client()
    assert (
        client.post(
            "/send-sms", json={"to": TO, "text": "a" * 20}, headers=auth_headers()
        ).status_code
        == 202
    )
    assert (
        client.post(
            "/send-sms", json={"to": TO, "text": "a" * 21}, headers=auth_headers()
        ).status_code
        == 422
    )


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "to=1&text=hi", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": '{"to": "+14155550100", "text": "hi"}', "content_type": "text/plain"}, 415),
        (
            {
                "data": '{"to": "+14155550100", "text": "hi"}',
                "content_type": "application/merge-patch+json",
            },
            415,
        ),
        (
            {
                "data": '{"to": "+14155550100", "text": "hi"}',
                "content_type": "application/json; charset=latin-1",
            },
            415,
        ),
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"data": '["to", "text"]', "content_type": "application/json"}, 400),
        ({"data": '"hello"', "content_type": "application/json"}, 400),
        ({"data": b'{"to": "\xff"}', "content_type": "application/json"}, 400),
        (
            {
                "data": '{"to": "+14155550100", "text": "' + "a" * 70000 + '"}',
                "content_type": "application/json",
            },
            413,
        ),
    ],
)
def test_malformed_bodies(app, client, vonage_api, kwargs, status):
    response = client.post("/send-sms", headers=auth_headers(), **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == status
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": API_KEY},
        {"Authorization": "Basic " + API_KEY},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_wrong_key_is_401(app, client, vonage_api, headers):
    response = client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert "WWW-Authenticate" in response.headers
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


def test_no_api_keys_configured_refuses_every_call(make_app, vonage_api):
    app = make_app(API_KEYS="")
    response = app.test_client().post(
        "/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()
    )
    assert response.status_code == 401
    assert len(vonage_api.calls) == 0


def test_every_configured_key_works(send, vonage_api):
    accepted(vonage_api)
    assert send({"to": TO, "text": "Hi"}, key=OTHER_API_KEY).status_code == 202


def test_unexpected_error_is_a_500_problem_without_a_trace(app, send, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("app.sending.send", explode)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = send({"to": TO, "text": "Hi"})
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert "secret internals" not in response.get_data(as_text=True)


# --- Idempotency ------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_without_sending(app, send, vonage_api):
    accepted(vonage_api)
    headers = {"Idempotency-Key": "order-42-attempt"}

    first = send({"to": TO, "text": "Hi"}, headers=headers)
    second = send({"to": TO, "text": "Hi"}, headers=headers)

    assert first.status_code == second.status_code == 202
    assert first.get_json() == second.get_json()
    assert len(vonage_api.calls) == 1
    assert count_rows(app, "messages") == 1


def test_idempotency_key_with_another_body_is_422(app, send, vonage_api):
    accepted(vonage_api)
    headers = {"Idempotency-Key": "k1"}
    assert send({"to": TO, "text": "Hi"}, headers=headers).status_code == 202
    response = send({"to": TO, "text": "Something else"}, headers=headers)
    assert response.status_code == 422
    assert response.json["type"].endswith("idempotency-key-reused")
    assert len(vonage_api.calls) == 1


def test_idempotency_keys_are_scoped_per_api_key(send, vonage_api):
    accepted(vonage_api)
    headers = {"Idempotency-Key": "shared"}
    assert send({"to": TO, "text": "Hi"}, headers=headers).status_code == 202
    assert send({"to": TO, "text": "Hi"}, headers=headers, key=OTHER_API_KEY).status_code == 202
    assert len(vonage_api.calls) == 2


def test_idempotency_key_in_flight_is_409(app, send, vonage_api):
    from app.api.auth import fingerprint
    from app.sending import request_hash
    from app.store import idempotency

    payload = {"to": TO, "text": "Hi"}
    canonical = {"to": TO.removeprefix("+"), "text": "Hi", "client_ref": None}
    with app.extensions["db"].begin() as connection:
        idempotency.claim_idempotency_key(
            connection, fingerprint(API_KEY), "busy", request_hash(canonical)
        )

    response = send(payload, headers={"Idempotency-Key": "busy"})

    assert response.status_code == 409
    assert len(vonage_api.calls) == 0


def test_unknown_outcome_is_replayed_not_resent(send, vonage_api):
    vonage_api.post(MESSAGES_URL, body=requests.ReadTimeout())
    headers = {"Idempotency-Key": "maybe-sent"}
    first = send({"to": TO, "text": "Hi"}, headers=headers)
    second = send({"to": TO, "text": "Hi"}, headers=headers)
    assert first.status_code == second.status_code == 504
    assert first.json["id"] == second.json["id"]
    assert len(vonage_api.calls) == 1


def test_a_vonage_refusal_is_replayed_not_resent(app, send, vonage_api):
    """Vonage's 4xx is final: DESIGN's same key and body within 24 h get the first answer."""
    vonage_api.post(MESSAGES_URL, status=422, json={"title": "Invalid params"})
    headers = {"Idempotency-Key": "refused-by-vonage"}
    first = send({"to": TO, "text": "Hi"}, headers=headers)
    accepted(vonage_api)

    retry = send({"to": TO, "text": "Hi"}, headers=headers)

    assert first.status_code == retry.status_code == 502
    assert retry.json == first.json
    assert retry.json["type"].endswith("vonage-rejected")
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(vonage_api.calls) == 1
    assert count_rows(app, "messages") == 1


def test_a_vonage_400_is_502_and_replayed_with_one_vonage_call(send, vonage_api):
    vonage_api.post(MESSAGES_URL, status=400, json={"title": "Bad Request", "detail": "nope"})
    headers = {"Idempotency-Key": "vonage-400"}

    answers = [send({"to": TO, "text": "Hi"}, headers=headers) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [502, 502, 502]
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    assert len(vonage_api.calls) == 1


def test_key_is_released_when_vonage_is_unavailable(send, vonage_api):
    """A retry-later answer is not stored: replaying a 503 for 24 h makes retrying pointless."""
    vonage_api.post(MESSAGES_URL, status=503, json={"title": "Service Unavailable"})
    headers = {"Idempotency-Key": "retry-me"}
    first = send({"to": TO, "text": "Hi"}, headers=headers)
    assert first.status_code == 503, first.json
    vonage_api.reset()
    accepted(vonage_api)
    retry = send({"to": TO, "text": "Hi"}, headers=headers)
    assert retry.status_code == 202
    assert "Idempotent-Replayed" not in retry.headers
    assert len(vonage_api.calls) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\x01key"])
def test_invalid_idempotency_key_is_422(app, send, vonage_api, key):
    response = send({"to": TO, "text": "Hi"}, headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 0


def test_concurrent_requests_with_one_key_send_one_sms(app, vonage_api):
    accepted(vonage_api)
    statuses = []

    def post():
        client = app.test_client()
        response = client.post(
            "/send-sms",
            json={"to": TO, "text": "Hi"},
            headers=auth_headers(**{"Idempotency-Key": "race"}),
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(vonage_api.calls) == 1
    assert count_rows(app, "messages") == 1
    assert set(statuses) <= {202, 409}
    assert 202 in statuses


# --- Opt-outs, daily cap, rate limit, throttle ------------------------------------------------


def test_opted_out_recipient_is_refused(app, send, vonage_api):
    from app.store import opt_outs

    with app.extensions["db"].begin() as connection:
        opt_outs.opt_out(connection, "14155550100", None)

    response = send({"to": TO, "text": "Hi"})

    assert response.status_code == 422
    assert response.json["type"].endswith("opted-out")
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


def test_daily_cap_refuses_once_reached(make_app, vonage_api):
    app = make_app(SEND_SMS_DAILY_LIMIT="2")
    accepted(vonage_api)
    client = app.test_client()

    def post():
        return client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers())

    assert [post().status_code for _ in range(2)] == [202, 202]
    response = post()

    assert response.status_code == 429
    assert response.json["type"].endswith("daily-limit")
    assert int(response.headers["Retry-After"]) > 0
    assert count_rows(app, "messages") == 2
    assert len(vonage_api.calls) == 2


def test_daily_cap_gives_back_slots_of_refused_messages(make_app, vonage_api):
    app = make_app(SEND_SMS_DAILY_LIMIT="1")
    vonage_api.post(MESSAGES_URL, status=400, json={"title": "Bad Request"})
    client = app.test_client()
    assert (
        client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()).status_code
        == 502
    )
    vonage_api.reset()
    accepted(vonage_api)
    assert (
        client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()).status_code
        == 202
    )


def test_daily_cap_zero_turns_it_off(make_app, vonage_api):
    app = make_app(SEND_SMS_DAILY_LIMIT="0")
    accepted(vonage_api)
    client = app.test_client()
    for _ in range(3):
        assert (
            client.post(
                "/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()
            ).status_code
            == 202
        )


def test_rate_limit_per_key_answers_429_with_retry_after(make_app, vonage_api, limit_storage_uri):
    app = make_app(SEND_SMS_RATE_LIMIT="2/minute", RATELIMIT_STORAGE_URI=limit_storage_uri)
    accepted(vonage_api)
    client = app.test_client()

    def post(key):
        return client.post("/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers(key))  # noqa: E731

    assert [post(API_KEY).status_code for _ in range(2)] == [202, 202]
    limited = post(API_KEY)

    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert len(vonage_api.calls) == 2
    assert post(OTHER_API_KEY).status_code == 202


def test_database_down_is_503_and_nothing_sent(app, send, vonage_api, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("could not connect"))

    monkeypatch.setattr("app.store.opt_outs.is_opted_out", broken)
    response = send({"to": TO, "text": "Hi"})
    assert response.status_code == 503
    assert response.json["type"].endswith("dependency-unavailable")
    assert len(vonage_api.calls) == 0


def test_rate_limit_storage_down_fails_closed_with_503(make_app, vonage_api):
    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    response = app.test_client().post(
        "/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()
    )
    assert response.status_code == 503
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 0


def test_expired_idempotency_keys_are_purged_and_reusable(app, send, vonage_api):
    from datetime import timedelta

    from app.store.dialect import utcnow

    accepted(vonage_api)
    headers = {"Idempotency-Key": "old-key"}
    assert send({"to": TO, "text": "Hi"}, headers=headers).status_code == 202
    with app.extensions["db"].begin() as connection:
        connection.execute(
            text("UPDATE idempotency_keys SET created_at = :t"),
            {"t": utcnow() - timedelta(hours=25)},
        )
    assert send({"to": TO, "text": "Other"}, headers=headers).status_code == 202
    assert count_rows(app, "idempotency_keys") == 1
    assert len(vonage_api.calls) == 2


def test_a_retry_after_an_opt_out_replays_the_first_answer(app, send, vonage_api):
    from app.store import opt_outs

    accepted(vonage_api)
    headers = {"Idempotency-Key": "sent-before-stop"}
    first = send({"to": TO, "text": "Hi"}, headers=headers)
    with app.extensions["db"].begin() as connection:
        opt_outs.opt_out(connection, "14155550100", None)

    retry = send({"to": TO, "text": "Hi"}, headers=headers)

    assert retry.status_code == 202
    assert retry.get_json() == first.get_json()
    assert len(vonage_api.calls) == 1


def test_opted_out_with_a_key_releases_it(app, send, vonage_api):
    from app.store import opt_outs

    with app.extensions["db"].begin() as connection:
        opt_outs.opt_out(connection, "14155550100", None)
    response = send({"to": TO, "text": "Hi"}, headers={"Idempotency-Key": "refused"})
    assert response.status_code == 422
    assert count_rows(app, "idempotency_keys") == 0
    assert len(vonage_api.calls) == 0
