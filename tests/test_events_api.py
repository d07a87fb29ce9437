"""/subscriptions and /events: per-key visibility, validation, routing, the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from app.store import outbox as outbox_store
from app.store.dialect import utcnow
from app.store.models import Message
from tests.support import (
    API_KEY,
    OTHER_API_KEY,
    accepted,
    auth_headers,
    count_rows,
    inbound_payload,
    signed_headers,
    status_payload,
)

HOOK = "https://hooks.example.com/sms-events"
ALICE = "+14155550100"
BOB = "+14155550101"


def subscribe(client, key=API_KEY, **fields):
    body = {"url": HOOK, "events": ["*"], **fields}
    return client.post("/subscriptions", json=body, headers=auth_headers(key))


def events_of(client, key=API_KEY, **params):
    response = client.get("/events", query_string=params, headers=auth_headers(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["events"]


def test_subscription_is_created_with_a_secret_shown_only_once(client):
    response = subscribe(client, events=["message.received", "message.status"])

    assert response.status_code == 201
    body = response.get_json()
    assert body["secret"].startswith("whsec_")
    assert body["url"] == HOOK and body["scope"] == "own" and body["enabled"] is True
    assert response.headers["Location"].endswith(f"/subscriptions/{body['id']}")
    listed = client.get("/subscriptions", headers=auth_headers()).get_json()["subscriptions"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    one = client.get(f"/subscriptions/{body['id']}", headers=auth_headers()).get_json()
    assert "secret" not in one and one["events"] == ["message.received", "message.status"]


def test_a_key_never_sees_another_keys_subscriptions(app, client):
    created = subscribe(client).get_json()
    path = f"/subscriptions/{created['id']}"
    other = auth_headers(OTHER_API_KEY)

    assert client.get("/subscriptions", headers=other).get_json() == {"subscriptions": []}
    assert client.get(path, headers=other).status_code == 404
    assert client.delete(path, headers=other).status_code == 404
    assert client.post(f"{path}/rotate-secret", headers=other).status_code == 404
    assert count_rows(app, "subscriptions") == 1
    assert client.delete(path, headers=auth_headers()).status_code == 204
    assert count_rows(app, "subscriptions") == 0
    assert client.get(path, headers=auth_headers()).status_code == 404


def test_a_deleted_subscription_answers_204_without_a_body_or_a_type(client):
    created = subscribe(client).get_json()
    response = client.delete(f"/subscriptions/{created['id']}", headers=auth_headers())
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers


def test_subscriptions_need_an_api_key(client):
    assert client.post("/subscriptions", json={"url": HOOK, "events": ["*"]}).status_code == 401
    assert client.get("/events").status_code == 401


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 42}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": None}, "url"),
        ({"events": []}, "events"),
        ({"events": "message.status"}, "events"),
        ({"events": ["message.sent"]}, "events"),
        ({"events": ["*", "message.status"]}, "events"),
        ({"events": [1]}, "events"),
        ({"scope": "everyone"}, "scope"),
        ({"url": "http://8.8.8.8:0/x"}, "url"),
        ({"url": "http://[fe80::1%25eth0]/x"}, "url"),
        ({"url": "http://[2001:db8::1%25eth0]/x"}, "url"),
        ({"url": "https://" + "é" * 64 + ".example/x"}, "url"),
        ({"secret": "mine"}, "secret"),
    ],
)
def test_invalid_subscription_is_422_and_stores_nothing(app, client, fields, field):
    body = {"url": HOOK, "events": ["*"], **fields}
    if fields.get("url", "") is None:
        del body["url"]
    response = client.post("/subscriptions", json=body, headers=auth_headers())

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert count_rows(app, "subscriptions") == 0


def test_production_takes_https_urls_only(make_app):
    app = make_app(APP_ENV="production")
    client = app.test_client()

    response = subscribe(client, url="http://hooks.example.com/x")

    assert response.status_code == 422
    assert count_rows(app, "subscriptions") == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://app.localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://0.0.0.0/hook",
        "http://2130706433/hook",
        "http://0177.0.0.1/hook",
        "http://100.64.0.1/hook",
        "http://[fe80::1]/hook",
        "http://[fe80::1%25eth0]/hook",
        "http://8.8.8.8:0/hook",
        # IPv6 that carries a private IPv4 address: NAT64, 6to4, IPv4-compatible, -translated.
        "http://[64:ff9b::7f00:1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[2002:7f00:1::]/hook",
        "http://[::127.0.0.1]/hook",
        "http://[::ffff:0:127.0.0.1]/hook",
    ],
)
def test_private_destinations_are_refused_at_subscribe(make_app, url):
    app = make_app(EVENT_ALLOW_PRIVATE_URLS="false")

    response = subscribe(app.test_client(), url=url)

    assert response.status_code == 422, url
    assert response.get_json()["errors"][0]["field"] == "url"
    assert count_rows(app, "subscriptions") == 0


def test_public_address_is_accepted_when_private_ones_are_refused(make_app):
    app = make_app(EVENT_ALLOW_PRIVATE_URLS="false")

    response = subscribe(app.test_client(), url="https://93.184.215.14/hook")

    assert response.status_code == 201


def test_a_public_address_through_nat64_is_accepted(make_app):
    app = make_app(EVENT_ALLOW_PRIVATE_URLS="false")

    response = subscribe(app.test_client(), url="https://[64:ff9b::5db8:d70e]/hook")

    assert response.status_code == 201
    assert count_rows(app, "subscriptions") == 1


def test_private_destinations_are_allowed_in_development_by_default(client):
    assert subscribe(client, url="http://127.0.0.1:4000/").status_code == 201


def test_rotation_returns_a_new_secret_and_keeps_the_old_for_24_hours(app, client):
    created = subscribe(client).get_json()

    response = client.post(f"/subscriptions/{created['id']}/rotate-secret", headers=auth_headers())

    assert response.status_code == 200
    rotated = response.get_json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    with app.extensions["db"].connect() as connection:
        row = connection.execute(text("SELECT secret, previous_secret FROM subscriptions")).one()
    assert (row.secret, row.previous_secret) == (rotated["secret"], created["secret"])


# Routing and the outbox -------------------------------------------------------


def _send(send, vonage_api, to, key):
    accepted(vonage_api)
    response = send({"to": to, "text": "Your code is 1234"}, key=key)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_replies_and_receipts_go_to_the_key_that_sent(
    app, client, send, vonage_api, signed_webhook
):
    alice_sub = subscribe(client, API_KEY).get_json()
    bob_sub = subscribe(client, OTHER_API_KEY).get_json()
    to_alice = _send(send, vonage_api, ALICE, API_KEY)
    _send(send, vonage_api, BOB, OTHER_API_KEY)

    signed_webhook("/webhooks/inbound", inbound_payload("Yes please", sender=ALICE[1:]))
    signed_webhook("/webhooks/inbound", inbound_payload("No thanks", sender=BOB[1:]))
    signed_webhook("/webhooks/status", status_payload(to_alice["message_uuid"], "delivered"))

    mine = events_of(client, API_KEY)
    theirs = events_of(client, OTHER_API_KEY)
    assert sorted(e["type"] for e in mine) == ["message.received", "message.status"]
    assert [e["type"] for e in theirs] == ["message.received"]
    received = next(e for e in mine if e["type"] == "message.received")
    assert received["data"]["text"] == "Yes please" and received["data"]["from"] == ALICE[1:]
    status = next(e for e in mine if e["type"] == "message.status")
    assert status["data"]["id"] == to_alice["id"] and status["data"]["status"] == "delivered"
    assert [h["status"] for h in status["data"]["events"]] == ["delivered"]
    assert theirs[0]["data"]["text"] == "No thanks"
    assert {d["subscription_id"] for e in mine for d in e["deliveries"]} == {alice_sub["id"]}
    assert {d["subscription_id"] for e in theirs for d in e["deliveries"]} == {bob_sub["id"]}


def test_a_reply_goes_to_the_key_that_texted_the_number_most_recently(
    client, send, vonage_api, signed_webhook
):
    _send(send, vonage_api, ALICE, API_KEY)
    _send(send, vonage_api, ALICE, OTHER_API_KEY)

    signed_webhook("/webhooks/inbound", inbound_payload("Hi", sender=ALICE[1:]))

    assert events_of(client, API_KEY) == []
    assert [e["type"] for e in events_of(client, OTHER_API_KEY)] == ["message.received"]


@pytest.mark.parametrize(
    "settings, age_days, routed",
    [({}, 29, True), ({}, 31, False), ({"REPLY_ROUTING_DAYS": "7"}, 8, False)],
)
def test_a_reply_is_routed_only_within_reply_routing_days(
    make_app, vonage_api, settings, age_days, routed
):
    app = make_app(**settings)
    client = app.test_client()
    accepted(vonage_api)
    client.post("/send-sms", json={"to": ALICE, "text": "Hi"}, headers=auth_headers())
    with app.extensions["db"].begin() as connection:
        connection.execute(
            update(Message.__table__).values(created_at=utcnow() - timedelta(days=age_days))
        )

    body = json.dumps(inbound_payload("Hi", sender=ALICE[1:])).encode()
    client.post("/webhooks/inbound", data=body, headers=signed_headers(body))

    assert len(events_of(client, API_KEY)) == (1 if routed else 0)
    assert count_rows(app, "events") == (1 if routed else 0)


def test_scope_all_receives_every_event_of_its_types(client, send, vonage_api, signed_webhook):
    audit = subscribe(client, OTHER_API_KEY, scope="all", events=["message.received"]).get_json()
    _send(send, vonage_api, ALICE, API_KEY)

    signed_webhook("/webhooks/inbound", inbound_payload("Hi", sender=ALICE[1:]))
    signed_webhook("/webhooks/inbound", inbound_payload("Who?", sender="14155550123"))

    seen = events_of(client, OTHER_API_KEY)
    assert sorted(e["data"]["text"] for e in seen) == ["Hi", "Who?"]
    assert all(e["deliveries"][0]["subscription_id"] == audit["id"] for e in seen)
    assert [e["data"]["text"] for e in events_of(client, API_KEY)] == ["Hi"]


def test_opt_out_and_back_in_go_to_the_keys_that_texted_the_number(
    client, send, vonage_api, signed_webhook
):
    _send(send, vonage_api, ALICE, API_KEY)

    signed_webhook("/webhooks/inbound", inbound_payload("STOP", sender=ALICE[1:]))
    signed_webhook("/webhooks/inbound", inbound_payload("START", sender=ALICE[1:]))

    opted = events_of(client, API_KEY, type="contact.opted_out")
    assert [e["data"]["number"] for e in opted] == [ALICE[1:]]
    assert opted[0]["data"]["opted_out"] is True
    assert len(events_of(client, API_KEY, type="contact.opted_in")) == 1
    assert events_of(client, OTHER_API_KEY) == []


def test_opt_in_from_a_number_never_opted_out_is_no_event(
    app, client, send, vonage_api, signed_webhook
):
    subscribe(client)
    _send(send, vonage_api, ALICE, API_KEY)

    signed_webhook("/webhooks/inbound", inbound_payload("Yes", sender=ALICE[1:]))

    assert events_of(client, API_KEY, type="contact.opted_in") == []
    assert count_rows(app, "opt_outs") == 0


def test_a_second_stop_is_no_second_opted_out_event(app, client, send, vonage_api, signed_webhook):
    subscribe(client, events=["contact.opted_out", "contact.opted_in"])
    _send(send, vonage_api, ALICE, API_KEY)

    signed_webhook("/webhooks/inbound", inbound_payload("STOP", sender=ALICE[1:]))
    signed_webhook("/webhooks/inbound", inbound_payload("stop", sender=ALICE[1:]))

    assert len(events_of(client, API_KEY, type="contact.opted_out")) == 1
    assert count_rows(app, "opt_outs") == 1
    assert count_rows(app, "deliveries") == 1


def test_opt_out_events_reach_keys_that_texted_the_number_long_ago(
    app, client, send, vonage_api, signed_webhook
):
    _send(send, vonage_api, ALICE, API_KEY)
    with app.extensions["db"].begin() as connection:
        connection.execute(
            update(Message.__table__).values(created_at=utcnow() - timedelta(days=40))
        )

    signed_webhook("/webhooks/inbound", inbound_payload("STOP", sender=ALICE[1:]))

    assert [e["type"] for e in events_of(client, API_KEY)] == ["contact.opted_out"]


def test_a_duplicate_webhook_writes_no_second_event(client, send, vonage_api, signed_webhook):
    sent = _send(send, vonage_api, ALICE, API_KEY)
    payload = status_payload(sent["message_uuid"], "delivered")

    signed_webhook("/webhooks/status", payload)
    signed_webhook("/webhooks/status", payload)

    assert len(events_of(client, API_KEY, type="message.status")) == 1


def test_the_event_commits_with_the_webhook_or_neither_does(
    app, client, send, vonage_api, signed_webhook, monkeypatch
):
    subscribe(client)
    _send(send, vonage_api, ALICE, API_KEY)

    def broken(*args, **kwargs):
        raise OperationalError("INSERT INTO events", {}, Exception("disk I/O error"))

    monkeypatch.setattr(outbox_store, "insert_event", broken)
    payload = inbound_payload("Hi", sender=ALICE[1:])
    response = signed_webhook("/webhooks/inbound", payload)

    assert response.status_code == 503
    assert count_rows(app, "events") == 0
    with app.extensions["db"].connect() as connection:
        stored = connection.execute(
            text("SELECT COUNT(*) FROM messages WHERE message_uuid = :u"),
            {"u": payload["message_uuid"]},
        ).scalar_one()
    assert stored == 0
    monkeypatch.undo()
    assert signed_webhook("/webhooks/inbound", payload).status_code == 200
    assert count_rows(app, "events") == 1 and count_rows(app, "deliveries") == 1


def test_the_sending_key_is_stored_as_a_fingerprint_never_the_key(app, send, vonage_api):
    sent = _send(send, vonage_api, ALICE, API_KEY)

    with app.extensions["db"].connect() as connection:
        owner = connection.execute(
            text("SELECT owner FROM messages WHERE id = :id"), {"id": sent["id"]}
        ).scalar_one()
    assert owner and owner != API_KEY and API_KEY not in owner


# The feed ---------------------------------------------------------------------


def test_events_feed_filters_pages_and_validates(client, send, vonage_api, signed_webhook):
    subscribe(client)
    for _ in range(3):
        _send(send, vonage_api, ALICE, API_KEY)
        signed_webhook("/webhooks/inbound", inbound_payload("Hi", sender=ALICE[1:]))

    first = client.get("/events?limit=2", headers=auth_headers()).get_json()
    second = client.get(
        f"/events?limit=2&cursor={first['next_cursor']}", headers=auth_headers()
    ).get_json()

    assert len(first["events"]) == 2 and len(second["events"]) == 1
    assert second["next_cursor"] is None
    assert all(e["status"] == "pending" for e in events_of(client, status="pending"))
    assert events_of(client, status="delivered") == []
    for query in (
        "status=sent",
        "type=message.sent",
        "limit=0",
        "limit=201",
        "cursor=zz",
        "x=1",
        "type=message.status&type=bogus",
        "status=pending&status=bogus",
        "limit=1&limit=500",
    ):
        response = client.get(f"/events?{query}", headers=auth_headers())
        assert response.status_code == 422, query
        assert response.content_type == "application/problem+json"


def test_redeliver_queues_the_event_again_and_is_404_for_others(
    app, client, send, vonage_api, signed_webhook
):
    subscribe(client)
    _send(send, vonage_api, ALICE, API_KEY)
    signed_webhook("/webhooks/inbound", inbound_payload("Hi", sender=ALICE[1:]))
    event = events_of(client)[0]
    with app.extensions["db"].begin() as connection:
        connection.execute(text("UPDATE deliveries SET status = 'failed', attempts = 8"))

    other = client.post(f"/events/{event['id']}/redeliver", headers=auth_headers(OTHER_API_KEY))
    response = client.post(f"/events/{event['id']}/redeliver", headers=auth_headers())

    assert other.status_code == 404
    assert response.status_code == 202
    again = client.get(f"/events/{event['id']}", headers=auth_headers()).get_json()
    assert again["status"] == "pending" and again["deliveries"][0]["attempts"] == 0
    assert (
        client.get(f"/events/{event['id']}", headers=auth_headers(OTHER_API_KEY)).status_code == 404
    )
    assert (
        client.post(f"/events/evt_{uuid.uuid4().hex}/redeliver", headers=auth_headers()).status_code
        == 404
    )


def test_metrics_show_the_backlog(client, send, vonage_api, signed_webhook):
    subscribe(client)
    _send(send, vonage_api, ALICE, API_KEY)
    signed_webhook("/webhooks/inbound", inbound_payload("Hi", sender=ALICE[1:]))

    body = client.get("/metrics", headers=auth_headers()).get_data(as_text=True)

    assert 'sms_event_deliveries_waiting{state="pending"} 1.0' in body
    assert "sms_event_oldest_pending_age_seconds" in body


def test_other_channels_replies_are_message_received_with_their_channel(
    client, send, vonage_api, signed_webhook
):
    _send(send, vonage_api, ALICE, API_KEY)
    payload = inbound_payload("Hi on WhatsApp", sender=ALICE[1:], channel="whatsapp")
    payload.pop("sms")

    assert signed_webhook("/webhooks/inbound", payload).status_code == 200

    [event] = events_of(client, API_KEY)
    assert event["type"] == "message.received"
    assert event["data"]["channel"] == "whatsapp" and event["data"]["text"] == "Hi on WhatsApp"


def test_status_of_a_message_known_only_by_webhooks_is_shown_as_get_shows_it(
    client, signed_webhook
):
    subscribe(client, scope="all", events=["message.status"])
    message_uuid = str(uuid.uuid4())

    signed_webhook("/webhooks/status", status_payload(message_uuid, "delivered"))

    [event] = events_of(client, type="message.status")
    shown = client.get(f"/messages/{message_uuid}", headers=auth_headers()).get_json()
    data = event["data"]
    assert {k: v for k, v in data.items() if k != "events"} == {
        k: v for k, v in shown.items() if k != "events"
    }
    assert data["created_at"] is not None and "price" in data and "channel" in data


def test_redeliver_adds_own_scope_subscriptions_only_for_events_routed_to_the_key(
    client, send, vonage_api, signed_webhook
):
    audit = subscribe(client, OTHER_API_KEY, scope="all", events=["message.received"]).get_json()
    _send(send, vonage_api, ALICE, API_KEY)
    signed_webhook("/webhooks/inbound", inbound_payload("Hi", sender=ALICE[1:]))
    own = subscribe(client, OTHER_API_KEY).get_json()
    mine = subscribe(client, API_KEY).get_json()
    [theirs] = events_of(client, OTHER_API_KEY)
    [routed] = events_of(client, API_KEY)

    for key, event in ((OTHER_API_KEY, theirs), (API_KEY, routed)):
        response = client.post(f"/events/{event['id']}/redeliver", headers=auth_headers(key))
        assert response.status_code == 202

    again = client.get(f"/events/{theirs['id']}", headers=auth_headers(OTHER_API_KEY)).get_json()
    assert [d["subscription_id"] for d in again["deliveries"]] == [audit["id"]]
    assert own["id"] not in [d["subscription_id"] for d in again["deliveries"]]
    routed_again = client.get(f"/events/{routed['id']}", headers=auth_headers()).get_json()
    assert [d["subscription_id"] for d in routed_again["deliveries"]] == [mine["id"]]


def test_redeliver_of_routed_status_and_opt_out_events_adds_own_subscriptions(
    client, send, vonage_api, signed_webhook
):
    sent = _send(send, vonage_api, ALICE, API_KEY)
    signed_webhook("/webhooks/status", status_payload(sent["message_uuid"], "delivered"))
    signed_webhook("/webhooks/inbound", inbound_payload("STOP", sender=ALICE[1:]))
    mine = subscribe(client).get_json()
    events = [e for e in events_of(client) if e["type"] != "message.received"]
    assert sorted(e["type"] for e in events) == ["contact.opted_out", "message.status"]

    for event in events:
        response = client.post(f"/events/{event['id']}/redeliver", headers=auth_headers())
        assert response.get_json()["deliveries"] == 1
        again = client.get(f"/events/{event['id']}", headers=auth_headers()).get_json()
        assert [d["subscription_id"] for d in again["deliveries"]] == [mine["id"]]


def test_a_key_may_have_at_most_100_subscriptions(app, client, monkeypatch):
    from app.events import routes

    assert routes.MAX_SUBSCRIPTIONS_PER_KEY == 100
    monkeypatch.setattr(routes, "MAX_SUBSCRIPTIONS_PER_KEY", 2)
    assert subscribe(client).status_code == 201
    assert subscribe(client).status_code == 201

    response = subscribe(client)

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert count_rows(app, "subscriptions") == 2
    assert subscribe(client, OTHER_API_KEY).status_code == 201


def patch_subscription(client, subscription_id, body, key=API_KEY):
    return client.patch(f"/subscriptions/{subscription_id}", json=body, headers=auth_headers(key))


def test_a_subscription_is_updated_in_place_and_keeps_its_secret(app, client):
    created = subscribe(client).get_json()

    response = patch_subscription(
        client,
        created["id"],
        {"url": "https://new.example.com/hook", "events": ["message.status"], "scope": "all"},
    )

    assert response.status_code == 200
    body = response.get_json()
    assert "secret" not in body
    assert (body["url"], body["events"], body["scope"]) == (
        "https://new.example.com/hook",
        ["message.status"],
        "all",
    )
    shown = client.get(f"/subscriptions/{created['id']}", headers=auth_headers()).get_json()
    assert shown == body
    with app.extensions["db"].connect() as connection:
        secret = connection.execute(text("SELECT secret FROM subscriptions")).scalar_one()
    assert secret == created["secret"]


def test_a_disabled_subscription_takes_no_events_and_its_waiting_ones_fail(
    app, client, signed_webhook
):
    created = subscribe(client, scope="all").get_json()
    assert signed_webhook("/webhooks/inbound", inbound_payload("first")).status_code == 200

    disabled = patch_subscription(client, created["id"], {"enabled": False})
    assert signed_webhook("/webhooks/inbound", inbound_payload("second")).status_code == 200

    assert disabled.status_code == 200
    body = disabled.get_json()
    assert body["enabled"] is False and body["disabled_reason"] == "disabled by its owner"
    (first,) = [e for e in events_of(client) if e["data"]["text"] == "first"]
    assert first["status"] == "failed"
    assert first["deliveries"][0]["last_error"] == "disabled by its owner"
    assert count_rows(app, "deliveries") == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": None}, "url"),
        ({"events": []}, "events"),
        ({"events": None}, "events"),
        ({"scope": "everyone"}, "scope"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": None}, "enabled"),
        ({"secret": "mine"}, "secret"),
        ({}, "body"),
    ],
)
def test_an_invalid_update_is_422_and_changes_nothing(app, client, body, field):
    created = subscribe(client).get_json()

    request = {"scope": "all", **body} if body else body  # a valid change is not half-applied
    response = patch_subscription(client, created["id"], request)

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert field in [error["field"] for error in response.get_json()["errors"]]
    shown = client.get(f"/subscriptions/{created['id']}", headers=auth_headers()).get_json()
    assert shown == {key: value for key, value in created.items() if key != "secret"}


@pytest.mark.parametrize("change", [{"enabled": False}, {"scope": "all"}])
def test_another_keys_subscription_cannot_be_updated(client, change):
    created = subscribe(client).get_json()

    response = patch_subscription(client, created["id"], change, key=OTHER_API_KEY)

    assert response.status_code == 404
    assert patch_subscription(client, "no-such-id", change).status_code == 404
    shown = client.get(f"/subscriptions/{created['id']}", headers=auth_headers()).get_json()
    assert shown == {key: value for key, value in created.items() if key != "secret"}


@pytest.mark.parametrize("events", [[{}], [["message.status"]]])
def test_an_update_with_unhashable_events_is_422_not_500(client, events):
    created = subscribe(client).get_json()

    response = patch_subscription(client, created["id"], {"events": events})

    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "events"


def test_the_pull_feed_filters_on_status_none_and_the_422_names_it(
    client, send, vonage_api, signed_webhook
):
    _send(send, vonage_api, ALICE, API_KEY)
    signed_webhook("/webhooks/inbound", inbound_payload("Hi", sender=ALICE[1:]))

    pulled = events_of(client, status="none")
    refused = client.get("/events?status=sent", headers=auth_headers())

    assert [event["data"]["text"] for event in pulled] == ["Hi"]
    assert pulled[0]["status"] == "none" and pulled[0]["deliveries"] == []
    assert refused.get_json()["errors"] == [
        {"field": "status", "message": "must be one of pending, delivered, failed, none"}
    ]
