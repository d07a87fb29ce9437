"""One canonical E.164 form for every number: sends, opt-outs, history, idempotency."""

import json

import pytest
from sqlalchemy import text

from tests.support import (
    accepted,
    auth_headers,
    count_rows,
    inbound_payload,
    signed_headers,
)


def assert_opted_out_and_nothing_sent(app, response, vonage_api):
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["type"].endswith("opted-out")
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 1  # the inbound STOP alone


@pytest.mark.parametrize(
    "written",
    [
        "+330612345678",  # trunk 0 kept after the country code
        "330612345678",
        "+33 06 12 34 56 78",
        "0033 6 12 34 56 78",
        "+33 (0)6-12-34-56-78",
        "+33612345678",
    ],
)
def test_an_opt_out_holds_however_the_number_is_written(
    app, signed_webhook, send, vonage_api, written
):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP", sender="33612345678"))

    response = send({"to": written, "text": "Hi"})

    assert_opted_out_and_nothing_sent(app, response, vonage_api)


@pytest.mark.parametrize("sender", ["330612345678", "+330612345678", "+33612345678"])
def test_an_inbound_sender_is_stored_canonical(app, signed_webhook, send, vonage_api, sender):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP", sender=sender))

    response = send({"to": "+33 6 12 34 56 78", "text": "Hi"})

    assert_opted_out_and_nothing_sent(app, response, vonage_api)
    with app.extensions["db"].connect() as connection:
        stored = connection.execute(text("SELECT from_number FROM messages")).scalar_one()
        opted = connection.execute(text("SELECT number FROM opt_outs")).scalar_one()
    assert stored == opted == "33612345678"


@pytest.mark.parametrize("sender", ["MyBrand", "22395", "447700900000"])
def test_senders_that_are_not_valid_numbers_are_stored_as_given(app, signed_webhook, sender):
    assert signed_webhook("/webhooks/inbound", inbound_payload(sender=sender)).status_code == 200
    with app.extensions["db"].connect() as connection:
        assert connection.execute(text("SELECT from_number FROM messages")).scalar_one() == sender


def test_a_send_stores_and_answers_the_canonical_number(app, send, vonage_api):
    accepted(vonage_api)

    response = send({"to": "0033 06 12 34 56 78", "text": "Hi"})

    assert response.status_code == 202
    assert response.json["to"] == "33612345678"
    assert json.loads(vonage_api.calls[0].request.body)["to"] == "33612345678"
    with app.extensions["db"].connect() as connection:
        stored = connection.execute(text("SELECT to_number FROM messages")).scalar_one()
    assert stored == "33612345678"


def test_the_same_idempotency_key_with_the_number_written_differently_is_a_replay(send, vonage_api):
    accepted(vonage_api)
    headers = {"Idempotency-Key": "order-7"}

    first = send({"to": "+14155550100", "text": "Hi"}, headers=headers)
    second = send({"to": "+1 (415) 555-0100", "text": "Hi"}, headers=headers)

    assert first.status_code == second.status_code == 202
    assert first.json["id"] == second.json["id"]
    assert len(vonage_api.calls) == 1


@pytest.mark.parametrize(
    ("stored", "query"),
    [
        ("33612345678", "%2B33%2006%2012%2034%2056%2078"),
        ("33612345678", "0033612345678"),
        ("447700900000", "447700900000"),  # Vonage's example range
        ("447700900000", "%2B447700900000"),
        ("22395", "22395"),  # a short code
        ("MyBrand", "MyBrand"),  # an alphanumeric sender ID
    ],
)
def test_history_filters_by_any_sender_the_service_stores(app, client, stored, query):
    other = inbound_payload(sender="14155550100")
    for payload in (inbound_payload(sender=stored), other):
        body = json.dumps(payload).encode()
        assert (
            client.post("/webhooks/inbound", data=body, headers=signed_headers(body)).status_code
            == 200
        )

    response = client.get(f"/messages?number={query}", headers=auth_headers())

    assert response.status_code == 200
    assert [message["from"] for message in response.json["messages"]] == [stored]


@pytest.mark.parametrize("query", ["12", "' OR 1=1 --", "x" * 80, "%00abc"])
def test_history_refuses_what_no_sender_can_be_and_says_what_is_valid(client, query):
    response = client.get(f"/messages?number={query}", headers=auth_headers())
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    message = response.json["errors"][0]["message"]
    assert "+14155550100" in message and "short code" in message


def test_number_filter_and_to_field_describe_a_number_the_same_way(client, send, vonage_api):
    bad_to = send({"to": "not a number", "text": "Hi"}).json["errors"][0]["message"]
    bad_filter = client.get("/messages?number=!!", headers=auth_headers())
    assert bad_filter.json["errors"][0]["message"].startswith(bad_to)
    assert len(vonage_api.calls) == 0


def test_an_unknown_status_filter_lists_the_valid_ones(client):
    response = client.get("/messages?status=bogus", headers=auth_headers())
    assert response.status_code == 422
    message = response.json["errors"][0]["message"]
    for status in ("submitted", "delivered", "rejected", "undeliverable", "read", "received"):
        assert status in message
