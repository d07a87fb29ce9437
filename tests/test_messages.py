"""GET /messages and GET /messages/<id>: filters, newest first, cursor paging."""

import json

import pytest

from app.status import as_message_error
from tests.support import (
    OTHER_API_KEY,
    SIGNATURE_SECRET,
    auth_headers,
    count_rows,
    inbound_payload,
    signed_headers,
)


def store_inbound(app, count, sender="14155550100", text_body="hello"):

    uuids = []
    client = app.test_client()
    for index in range(count):
        payload = inbound_payload(f"{text_body} {index}", sender=sender)
        body = json.dumps(payload).encode()
        response = client.post(
            "/webhooks/inbound",
            data=body,
            headers=signed_headers(body, SIGNATURE_SECRET),
        )
        assert response.status_code == 200
        uuids.append(payload["message_uuid"])
    return uuids


def test_messages_need_an_api_key(client):
    assert client.get("/messages").status_code == 401
    assert client.get("/messages/abc").status_code == 401


def test_list_is_newest_first_with_every_field(app, client):
    uuids = store_inbound(app, 3)
    response = client.get("/messages", headers=auth_headers())
    assert response.status_code == 200
    messages = response.json["messages"]
    assert [m["message_uuid"] for m in messages] == list(reversed(uuids))
    assert set(messages[0]) == {
        "id",
        "message_uuid",
        "direction",
        "from",
        "to",
        "text",
        "status",
        "segments",
        "encoding",
        "client_ref",
        "error",
        "created_at",
        "updated_at",
        "channel",
        "message_type",
        "media_url",
        "price",
        "currency",
        "network_code",
    }
    assert messages[0]["channel"] == "sms"
    assert messages[0]["created_at"].endswith("Z")
    assert response.json["next_cursor"] is None


def test_cursor_pages_through_everything_once(app, client):
    uuids = store_inbound(app, 7)
    seen, cursor = [], None
    while True:
        query = "/messages?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=auth_headers(OTHER_API_KEY)).json
        seen += [m["message_uuid"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(uuids))


def test_filters_by_direction_number_and_status(app, client):
    store_inbound(app, 2, sender="14155550101")
    store_inbound(app, 1, sender="14155550102")
    by_number = client.get("/messages?number=%2B14155550102", headers=auth_headers()).json[
        "messages"
    ]
    assert [m["from"] for m in by_number] == ["14155550102"]
    assert (
        len(client.get("/messages?direction=inbound", headers=auth_headers()).json["messages"]) == 3
    )
    assert client.get("/messages?direction=outbound", headers=auth_headers()).json["messages"] == []
    assert (
        len(client.get("/messages?status=received", headers=auth_headers()).json["messages"]) == 3
    )
    assert client.get("/messages?status=delivered", headers=auth_headers()).json["messages"] == []
    plus_as_space = client.get("/messages?number=+14155550101", headers=auth_headers()).json[
        "messages"
    ]
    assert len(plus_as_space) == 2


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=abc",
        "limit=1e3",
        "direction=sideways",
        "status=exploded",
        "number=12",
        "number=' OR 1=1 --",
        "cursor=!!!",
        "cursor=bm90IGpzb24",
        "cursor=" + "A" * 5000,
        "cursor=WyJ4IiwgMV0",
        "cursor=%FF%FE",
        "unknown=1",
        "limit=1&limit=500",
        "direction=inbound&direction=outbound",
        "status=delivered&status=exploded",
    ],
)
def test_hostile_or_bad_queries_are_422(client, query):
    response = client.get(f"/messages?{query}", headers=auth_headers())
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_get_one_by_uuid_or_by_id(app, client):
    (message_uuid,) = store_inbound(app, 1)
    by_uuid = client.get(f"/messages/{message_uuid}", headers=auth_headers()).json
    assert by_uuid["message_uuid"] == message_uuid
    assert by_uuid["events"] == []
    by_id = client.get(f"/messages/{by_uuid['id']}", headers=auth_headers()).json
    assert by_id["message_uuid"] == message_uuid


@pytest.mark.parametrize("identifier", ["nothing-known", "x" * 500, "%27%20OR%201%3D1"])
def test_unknown_id_is_404(client, identifier):
    response = client.get(f"/messages/{identifier}", headers=auth_headers())
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_unknown_route_is_a_problem_not_html(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert client.delete("/send-sms").status_code == 405


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/send-sms", {"POST", "OPTIONS"}),
        ("/messages", {"GET", "HEAD", "OPTIONS"}),
        ("/messages/anything", {"GET", "HEAD", "OPTIONS"}),
        ("/health", {"GET", "HEAD", "OPTIONS"}),
        ("/openapi.json", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_is_a_bodyless_204_with_allow_not_html(app, client, vonage_api, path, allowed):
    """Flask's automatic OPTIONS answered an empty 200 `text/html` page."""
    response = client.open(
        path, method="OPTIONS", json={"to": "+14155550100", "text": "hi"}, headers=auth_headers()
    )

    assert response.status_code == 204
    assert "Content-Type" not in response.headers
    assert response.data == b""
    assert {method.strip() for method in response.headers["Allow"].split(",")} == allowed
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (None, None),
        (
            {"type": "https://x/1320", "title": 1320, "detail": "blocked", "instance": "i"},
            {"type": "https://x/1320", "title": "1320", "detail": "blocked", "instance": "i"},
        ),
        (
            {"title": "1250"},
            {"type": "about:blank", "title": "1250", "detail": None, "instance": None},
        ),
        (
            {"detail": "Vonage answered 500", "status_code": 500},
            {
                "type": "about:blank",
                "title": "Vonage answered 500",
                "detail": "Vonage answered 500",
                "instance": None,
            },
        ),
        (
            {"detail": "no slot"},
            {"type": "about:blank", "title": "Not sent", "detail": "no slot", "instance": None},
        ),
    ],
)
def test_every_stored_error_shows_in_the_one_documented_shape(stored, shown):
    assert as_message_error(stored) == shown
