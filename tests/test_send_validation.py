"""POST /send-sms with bad input or credentials: a clear problem, nothing stored, nothing sent."""

import pytest

from tests.support import API_KEY, OTHER_API_KEY, TO, accepted, auth_headers, count_rows


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
