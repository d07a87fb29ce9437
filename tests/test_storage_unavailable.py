"""A SQLite database whose folder is missing or not writable is unavailable: every
route that writes answers 503 problem+json (Vonage sends a webhook again), never 500."""

import json

import pytest

from tests.support import TO, accepted, auth_headers, inbound_payload, signed_headers


@pytest.fixture
def unavailable(make_app, tmp_path):
    return make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'gone' / 'sms.db'}")


def _webhook(client):
    body = json.dumps(inbound_payload("Hello")).encode()
    return client.post("/webhooks/inbound", data=body, headers=signed_headers(body))


def _subscribe(client):
    return client.post(
        "/subscriptions",
        json={"url": "https://example.com/hook", "events": ["*"]},
        headers=auth_headers(),
    )


@pytest.mark.parametrize("call", [_webhook, _subscribe], ids=["webhook", "subscription"])
def test_writes_answer_503_when_the_sqlite_folder_is_missing(unavailable, tmp_path, call):
    response = call(unavailable.test_client())

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert not (tmp_path / "gone").exists()


def test_a_send_answers_503_and_calls_no_one(unavailable, tmp_path, vonage_api):
    accepted(vonage_api)
    response = unavailable.test_client().post(
        "/send-sms", json={"to": TO, "text": "Hello"}, headers=auth_headers()
    )

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert len(vonage_api.calls) == 0
    assert not (tmp_path / "gone").exists()
