"""Hostile API input: unpaired surrogates, invisible texts, oversized error lists."""

import base64
import json

import pytest

from tests.support import auth_headers, count_rows


def raw_send(client, body: str):
    return client.post(
        "/send-sms",
        data=body.encode(),
        headers=auth_headers(**{"Content-Type": "application/json"}),
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"to": "+14155550100", "text": "\\ud800"}', "text"),
        ('{"to": "+14155550100", "text": "Hi \\udfff there"}', "text"),
        ('{"to": "+14155550100", "text": "Hi", "client_ref": "\\ud800"}', "client_ref"),
        ('{"to": "+1415555\\ud8000100", "text": "Hi"}', "to"),
        ('{"to": "+14155550100", "text": "Hi", "\\ud800": 1}', None),
    ],
)
def test_unpaired_surrogates_are_422_and_nothing_is_stored_or_sent(
    app, client, vonage_api, body, field
):
    response = raw_send(client, body)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    if field:
        assert field in [error["field"] for error in response.json["errors"]]
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


def test_a_forged_cursor_with_a_surrogate_is_422(client):
    forged = json.dumps(["2026-11-26T12:00:00", "\ud800"]).encode()
    cursor = base64.urlsafe_b64encode(forged).decode().rstrip("=")

    response = client.get(f"/messages?cursor={cursor}", headers=auth_headers())

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("invisible", ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", "\u3164 \u2800"])
def test_a_text_of_only_invisible_characters_is_refused(app, send, vonage_api, invisible):
    response = send({"to": "+14155550100", "text": invisible})

    assert response.status_code == 422
    assert response.json["errors"] == [
        {
            "field": "text",
            "message": "is empty after clean-up (only spaces, control or invisible characters)",
        }
    ]
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


def test_a_body_of_unknown_fields_gets_a_short_answer_saying_how_many_were_omitted(
    app, send, vonage_api
):
    body = {f"f{index:04d}": 1 for index in range(4000)}
    body["x" * 5000] = 1
    body.update({"to": "+14155550100", "text": "Hi"})
    assert len(json.dumps(body)) < 64 * 1024

    response = send(body)

    assert response.status_code == 422
    problem = response.json
    assert len(problem["errors"]) == 20
    assert problem["errors_omitted"] == 4001 - 20
    assert "3981 more errors omitted" in problem["detail"]
    assert all(len(error["field"]) <= 64 for error in problem["errors"])
    assert len(response.data) < 4096
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/messages//a"),
        ("GET", "/messages/%2Fa"),
        ("GET", "/health//ready"),
        ("POST", "/webhooks//inbound"),
        ("POST", "/webhooks//status"),
    ],
)
def test_doubled_slashes_are_404_problem_json_not_an_html_redirect(
    app, client, vonage_api, method, path
):
    """werkzeug's merge_slashes answered these with an HTML 308 that Flask's
    error handlers never see."""
    body = json.dumps({"message_uuid": "x", "from": "14155550100", "to": "14155550199"})
    response = client.open(
        path, method=method, data=body, content_type="application/json", headers=auth_headers()
    )

    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 404
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_body_that_is_not_utf_8_is_400_and_nothing_is_sent(app, client, vonage_api, encoding):
    """`application/json` is UTF-8 (RFC 8259); json.loads guessed UTF-16 and UTF-32
    from the bytes, so such a body was read, stored and sent."""
    body = json.dumps({"to": "+14155550100", "text": "Hi"}).encode(encoding)

    response = client.post(
        "/send-sms", data=body, headers=auth_headers(**{"Content-Type": "application/json"})
    )

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


def test_a_utf_8_body_with_a_byte_order_mark_is_still_read(app, client, vonage_api):
    from tests.support import accepted

    accepted(vonage_api)
    body = b"\xef\xbb\xbf" + json.dumps({"to": "+14155550100", "text": "Hi"}).encode()

    response = client.post(
        "/send-sms", data=body, headers=auth_headers(**{"Content-Type": "application/json"})
    )

    assert response.status_code == 202
    assert count_rows(app, "messages") == 1
