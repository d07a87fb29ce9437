"""Retention of message texts and erasure of everything about one number."""

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from app import retention
from app.config import ConfigError
from app.store.dialect import utcnow
from tests.support import (
    accepted,
    auth_headers,
    count_rows,
    inbound_payload,
    status_payload,
)
from tests.test_events_api import subscribe

NUMBER = "33612345678"


def rows(app, query, **params):
    with app.extensions["db"].connect() as connection:
        return [tuple(row) for row in connection.execute(text(query), params)]


def age_messages(app, days):
    with app.extensions["db"].begin() as connection:
        connection.execute(
            text("UPDATE messages SET created_at = :at"), {"at": utcnow() - timedelta(days=days)}
        )


def store_old_message(app, days):
    """Inbound message `m1` with the text "old", received `days` ago, stored directly."""
    with app.extensions["db"].begin() as connection:
        connection.execute(
            text(
                "INSERT INTO messages (id, direction, from_number, to_number, text, status,"
                " created_at, updated_at) VALUES ('m1', 'inbound', :n, '14155550199', 'old',"
                " 'received', :at, :at)"
            ),
            {"n": NUMBER, "at": utcnow() - timedelta(days=days)},
        )


# --- Retention ---------------------------------------------------------------------------------


def test_retention_erases_old_texts_and_keeps_rows_and_statuses(app, signed_webhook):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="old secret", sender=NUMBER))
    age_messages(app, 40)
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="recent", sender=NUMBER))

    erased = retention.sweep(app.extensions["db"], 30)

    assert erased == 1
    assert sorted(rows(app, "SELECT text, status FROM messages"), key=str) == sorted(
        [(None, "received"), ("recent", "received")], key=str
    )
    assert retention.sweep(app.extensions["db"], 30) == 0


def v0_1_inbound(text_body):
    """A signed inbound the service cannot interpret: kept raw as a dead letter."""
    return {
        "message_uuid": str(uuid.uuid4()),
        "to": {"type": "sms", "number": "14155550199"},
        "from": {"type": "sms", "number": NUMBER},
        "timestamp": "2026-11-26T15:43:21.000Z",
        "direction": "inbound",
        "message": {"content": {"type": "text", "text": text_body}},
    }


def test_retention_deletes_dead_letters_older_than_the_period(app, signed_webhook):
    """A dead letter is a raw body, the texter's text in it: retention leaves none older."""
    signed_webhook("/webhooks/inbound", v0_1_inbound("old secret"))
    with app.extensions["db"].begin() as connection:
        connection.execute(
            text("UPDATE dead_letters SET received_at = :at"),
            {"at": utcnow() - timedelta(days=40)},
        )
    signed_webhook("/webhooks/inbound", v0_1_inbound("recent"))
    assert count_rows(app, "dead_letters") == 2

    retention.sweep(app.extensions["db"], 30)

    kept = [body for (body,) in rows(app, "SELECT body FROM dead_letters")]
    assert len(kept) == 1
    assert "recent" in kept[0]
    assert "old secret" not in kept[0]


def test_retention_cli_uses_the_setting(make_app):
    app = make_app(MESSAGE_RETENTION_DAYS="7")
    # Stored directly: a request would start the in-process sweeper, which could
    # erase the text first (the CLI, not the sweeper, is under test here).
    store_old_message(app, days=8)

    result = app.test_cli_runner().invoke(args=["retention"])

    assert result.exit_code == 0, result.output
    assert "erased the text of 1 messages" in result.output
    assert rows(app, "SELECT text FROM messages") == [(None,)]


def test_retention_cli_without_a_period_refuses(app, runner, signed_webhook):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="keep me", sender=NUMBER))
    result = runner.invoke(args=["retention"])
    assert result.exit_code != 0
    assert "MESSAGE_RETENTION_DAYS" in result.output
    assert rows(app, "SELECT text FROM messages") == [("keep me",)]


def test_the_in_process_sweeper_runs_on_the_first_request(make_app):
    app = make_app(MESSAGE_RETENTION_DAYS="30")
    store_old_message(app, days=31)
    sweeper = app.extensions["retention"]
    sweeper.stopped.set()  # one sweep, then the thread ends

    assert app.test_client().get("/health").status_code == 200

    sweeper._thread.join(timeout=10)
    assert not sweeper._thread.is_alive()
    assert rows(app, "SELECT text, status FROM messages") == [(None, "received")]


def test_retention_is_off_by_default(app):
    assert "retention" not in app.extensions


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_bad_retention_period_refuses_to_start(make_settings, value):
    with pytest.raises(ConfigError, match="MESSAGE_RETENTION_DAYS"):
        make_settings(MESSAGE_RETENTION_DAYS=value)


# --- Erasure -----------------------------------------------------------------------------------


def seed_history(app, signed_webhook, send, vonage_api):
    """Two messages each way with NUMBER (and their events), one with someone else."""
    accepted(vonage_api)
    sent = send({"to": "+33 6 12 34 56 78", "text": "Hi"}, headers={"Idempotency-Key": "k1"})
    assert sent.status_code == 202
    other = send({"to": "+14155550100", "text": "Hi"}, headers={"Idempotency-Key": "k2"})
    signed_webhook("/webhooks/status", status_payload(sent.json["message_uuid"], "delivered"))
    signed_webhook("/webhooks/status", status_payload(other.json["message_uuid"], "delivered"))
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="Who is this?", sender=NUMBER))
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP", sender=NUMBER))
    return other.json


def test_erasing_a_number_deletes_its_messages_events_and_answers_but_keeps_the_opt_out(
    app, client, signed_webhook, send, vonage_api
):
    other = seed_history(app, signed_webhook, send, vonage_api)

    response = client.delete("/numbers/+330612345678", headers=auth_headers())

    assert response.status_code == 200
    assert response.json == {
        "number": NUMBER,
        "messages_erased": 3,
        "events_erased": 1,
        "idempotency_keys_erased": 1,
        "outbox_events_erased": response.json["outbox_events_erased"],
        "dead_letters_erased": 0,
        "opt_out_kept": True,
    }
    assert response.json["outbox_events_erased"] > 0
    assert rows(app, "SELECT id FROM messages") == [(other["id"],)]
    assert count_rows(app, "message_events") == 1
    assert rows(app, "SELECT key FROM idempotency_keys") == [("k2",)]
    assert rows(app, "SELECT number, message_uuid FROM opt_outs") == [(NUMBER, None)]
    listed = client.get(f"/messages?number={NUMBER}", headers=auth_headers())
    assert listed.json["messages"] == []
    # The opt-out still holds: nothing is sent.
    calls = len(vonage_api.calls)
    assert send({"to": NUMBER, "text": "Hi again"}).status_code == 422
    assert len(vonage_api.calls) == calls


def test_erasing_needs_an_api_key_and_a_number(app, client, signed_webhook):
    signed_webhook("/webhooks/inbound", inbound_payload(sender=NUMBER))

    unauthorised = client.delete(f"/numbers/{NUMBER}")
    invalid = client.delete("/numbers/'%20OR%201=1", headers=auth_headers())

    assert unauthorised.status_code == 401
    assert invalid.status_code == 422
    assert invalid.mimetype == "application/problem+json"
    assert count_rows(app, "messages") == 1


@pytest.mark.parametrize("written", ["14155550199", "+1 415 555 0199", "0014155550199"])
def test_the_services_own_number_cannot_be_erased(app, client, runner, signed_webhook, written):
    """Every inbound message is to VONAGE_NUMBER and every send from it: one call with
    any API key erased the whole history of every key."""
    signed_webhook("/webhooks/inbound", inbound_payload(sender=NUMBER))

    response = client.delete(f"/numbers/{written}", headers=auth_headers())
    command = runner.invoke(args=["erase-number", written])

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"][0]["field"] == "number"
    assert command.exit_code != 0
    assert "VONAGE_NUMBER" in command.output
    assert count_rows(app, "messages") == 1


def test_erase_number_cli(app, runner, signed_webhook):
    signed_webhook("/webhooks/inbound", inbound_payload(sender="MyBrand"))
    signed_webhook("/webhooks/inbound", inbound_payload(sender=NUMBER))

    result = runner.invoke(args=["erase-number", "MyBrand"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["messages_erased"] == 1
    assert rows(app, "SELECT from_number FROM messages") == [(NUMBER,)]


def test_erasing_a_number_deletes_the_events_pushed_about_it(
    app, client, signed_webhook, send, vonage_api
):
    accepted(vonage_api)
    assert subscribe(client).status_code == 201
    assert send({"to": NUMBER, "text": "Hi"}).status_code == 202
    assert send({"to": "+14155550100", "text": "Hi"}).status_code == 202
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="Secret reply", sender=NUMBER))
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP", sender=NUMBER))
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="Other", sender="14155550100"))
    before = count_rows(app, "events")
    assert before >= 3

    response = client.delete(f"/numbers/{NUMBER}", headers=auth_headers())

    assert response.status_code == 200
    erased = response.json["outbox_events_erased"]
    assert erased >= 3
    assert count_rows(app, "events") == before - erased
    bodies = [body for (body,) in rows(app, "SELECT body FROM events")]
    assert bodies and not any(NUMBER in body for body in bodies)
    assert not any("Secret reply" in body for body in bodies)
    assert rows(
        app, "SELECT COUNT(*) FROM deliveries WHERE event_id NOT IN (SELECT id FROM events)"
    ) == [(0,)]
