"""POST /send-sms past the per-key rate limit or with a dependency down: 429 or 503, none sent."""

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.support import API_KEY, OTHER_API_KEY, TO, accepted, auth_headers, count_rows


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


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("SELECT", {}, Exception("could not connect")),
        # PostgreSQL: every pooled connection busy for longer than the pool waits.
        PoolTimeout("QueuePool limit of size 10 overflow 20 reached"),
    ],
    ids=["database-down", "pool-exhausted"],
)
def test_database_down_is_503_and_nothing_sent(app, send, vonage_api, monkeypatch, failure):
    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr("app.store.opt_outs.is_opted_out", broken)
    response = send({"to": TO, "text": "Hi"})
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.json["type"].endswith("dependency-unavailable")
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 0


def test_rate_limit_storage_down_fails_closed_with_503(make_app, vonage_api):
    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    response = app.test_client().post(
        "/send-sms", json={"to": TO, "text": "Hi"}, headers=auth_headers()
    )
    assert response.status_code == 503
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 0
