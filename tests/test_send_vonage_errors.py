"""POST /send-sms when Vonage fails: which failures are retried, what each answers and stores."""

import pytest
import requests
from sqlalchemy import text
from urllib3.exceptions import NewConnectionError

from tests.support import MESSAGES_URL, TO, accepted, auth_headers, count_rows, stored_message


def test_503_then_202_is_retried_once(app, send, vonage_api):
    vonage_api.post(MESSAGES_URL, json={"title": "Service Unavailable"}, status=503)
    accepted(vonage_api)

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 202
    assert len(vonage_api.calls) == 2
    assert len(app.config["SLEEPS"]) == 1


@pytest.mark.parametrize(
    "refused",
    [
        requests.ConnectionError(NewConnectionError(None, "Connection refused")),
        requests.ConnectionError("[Errno 111] Connection refused"),
        requests.ConnectionError(ConnectionRefusedError(111, "Connection refused")),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["urllib3", "words", "wrapped", "bare"],
)
def test_connection_refused_is_retried(send, vonage_api, refused):
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


@pytest.mark.parametrize(
    ("header", "answered"), [("inf", "3600"), ("1e400", "3600"), ("nan", None), ("-5", None)]
)
def test_a_retry_after_vonage_should_never_send_is_bounded_not_a_500(
    app, send, vonage_api, header, answered
):
    vonage_api.post(
        MESSAGES_URL, json={"title": "Busy"}, status=503, headers={"Retry-After": header}
    )
    vonage_api.post(MESSAGES_URL, json={"title": "Busy"}, status=503)

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 503
    assert response.json["type"].endswith("vonage-unavailable")
    if answered:
        assert response.headers["Retry-After"] == answered
        assert len(vonage_api.calls) == 1
    assert all(0 <= seconds <= 3600 for seconds in app.config["SLEEPS"])


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


def test_a_redirect_is_never_followed_and_the_send_is_kept_unknown(app, send, vonage_api):
    """A POST that may have sent a paid SMS is never sent again elsewhere."""
    vonage_api.post(
        MESSAGES_URL, status=307, headers={"Location": "https://elsewhere.example/v1/messages"}
    )

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 502
    assert len(vonage_api.calls) == 1
    assert stored_message(app, response.json["id"])["status"] == "unknown"


def test_read_timeout_is_504_never_retried_and_kept_unknown(app, send, vonage_api):
    vonage_api.post(MESSAGES_URL, body=requests.ReadTimeout())

    response = send({"to": TO, "text": "Hello"})

    assert response.status_code == 504
    assert len(vonage_api.calls) == 1
    assert stored_message(app, response.json["id"])["status"] == "unknown"


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


def test_unexpected_error_is_a_500_problem_without_a_trace(app, send, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["sender"], "send", explode)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = send({"to": TO, "text": "Hi"})
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert "secret internals" not in response.get_data(as_text=True)
