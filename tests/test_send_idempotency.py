"""POST /send-sms with an Idempotency-Key: one SMS per key and body, the first answer replayed."""

import threading

import pytest
import requests
from sqlalchemy import text

from tests.support import (
    API_KEY,
    MESSAGES_URL,
    OTHER_API_KEY,
    TO,
    accepted,
    auth_headers,
    count_rows,
)


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


def test_on_postgresql_a_send_never_shares_a_webhook_batch(app, send, vonage_api, monkeypatch):
    """A send's writes (the Idempotency-Key claim included) take locks that a shared
    transaction would hold for its whole batch: on PostgreSQL they keep their own."""
    from app.store import engine as engine_module

    if app.extensions["db"].dialect.name != "postgresql":
        pytest.skip("SQLite batches every write of a worker")
    batched = []
    real = engine_module._GroupCommitter._commit

    def recording(self, connection, batch):
        batched.append(len(batch))
        return real(self, connection, batch)

    monkeypatch.setattr(engine_module._GroupCommitter, "_commit", recording)
    accepted(vonage_api)
    response = send({"to": TO, "text": "hi"}, headers={"Idempotency-Key": "claim-1"})
    assert response.status_code == 202
    assert batched == []
