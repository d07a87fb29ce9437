"""Sends that outlive their request, lose storage after Vonage, or lose Redis."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api.auth import fingerprint
from app.openapi import build_spec
from app.sending import request_hash
from app.store import idempotency, messages
from app.store.dialect import utcnow
from tests.support import API_KEY, TO, accepted, count_rows, stored_message
from tests.test_openapi import assert_conforms

PAYLOAD = {"to": TO, "text": "Hi"}
# What an Idempotency-Key is tied to: the request in canonical form.
CANONICAL = {"to": TO.removeprefix("+"), "text": "Hi", "client_ref": None}


def abandoned_send(app, key: str, *, vonage_called: bool, daily_count: int = 1) -> str:
    """What a request killed mid-send leaves: its claim past its hold, its row pending."""
    message_id = f"0b7e0c4e-0000-4000-8000-00000000000{1 if vonage_called else 2}"
    long_ago = utcnow() - timedelta(minutes=5)
    with app.extensions["db"].begin() as connection:
        idempotency.claim_idempotency_key(
            connection, fingerprint(API_KEY), key, request_hash(CANONICAL), timedelta(seconds=1)
        )
        connection.execute(
            text(
                "INSERT INTO messages (id, direction, from_number, to_number, text, status,"
                " segments, encoding, created_at, updated_at, vonage_called_at) VALUES (:id,"
                " 'outbound', '14155550199', '14155550100', 'Hi', 'pending', 1, 'GSM-7', :t, :t,"
                " :called)"
            ),
            {"id": message_id, "t": long_ago, "called": long_ago if vonage_called else None},
        )
        connection.execute(
            text("UPDATE idempotency_keys SET message_id = :id, in_flight_until = :t"),
            {"id": message_id, "t": long_ago},
        )
        connection.execute(
            text("INSERT INTO daily_send_counts (day, count) VALUES (:day, :n)"),
            {"day": long_ago.date(), "n": daily_count},
        )
    return message_id


def daily_count(app) -> int:
    with app.extensions["db"].connect() as connection:
        return connection.execute(text("SELECT SUM(count) FROM daily_send_counts")).scalar_one()


def test_a_replay_says_it_is_one(send, vonage_api):
    accepted(vonage_api)
    headers = {"Idempotency-Key": "replayed"}
    first = send(PAYLOAD, headers=headers)
    second = send(PAYLOAD, headers=headers)
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(vonage_api.calls) == 1


def test_a_key_in_flight_within_its_hold_is_409(app, send, vonage_api):
    with app.extensions["db"].begin() as connection:
        idempotency.claim_idempotency_key(
            connection, fingerprint(API_KEY), "busy", request_hash(CANONICAL), timedelta(hours=1)
        )
    response = send(PAYLOAD, headers={"Idempotency-Key": "busy"})
    assert response.status_code == 409
    assert len(vonage_api.calls) == 0


def test_a_dead_request_that_called_vonage_answers_maybe_sent_and_never_resends(
    app, send, vonage_api
):
    message_id = abandoned_send(app, "killed", vonage_called=True)

    response = send(PAYLOAD, headers={"Idempotency-Key": "killed"})

    assert response.status_code == 504
    assert response.json["id"] == message_id
    assert response.json["type"].endswith("vonage-outcome-unknown")
    assert response.headers["Idempotent-Replayed"] == "true"
    assert stored_message(app, message_id)["status"] == "unknown"
    assert daily_count(app) == 1
    assert len(vonage_api.calls) == 0


def test_a_dead_request_settled_by_its_webhook_answers_the_contracts_202(app, send, vonage_api):
    """The first answer again: `submitted` (SendAccepted's only status), even once delivered."""
    message_id = abandoned_send(app, "killed", vonage_called=True)
    with app.extensions["db"].begin() as connection:
        connection.execute(
            text("UPDATE messages SET status = 'delivered', message_uuid = 'u-1' WHERE id = :id"),
            {"id": message_id},
        )

    response = send(PAYLOAD, headers={"Idempotency-Key": "killed"})

    assert response.status_code == 202
    assert response.json["id"] == message_id
    assert response.json["message_uuid"] == "u-1"
    assert response.json["status"] == "submitted"
    assert response.headers["Idempotent-Replayed"] == "true"
    assert_conforms(build_spec(), "POST", "/send-sms", response)
    assert stored_message(app, message_id)["status"] == "delivered"
    assert len(vonage_api.calls) == 0


def test_a_dead_request_that_never_called_vonage_fails_and_gives_its_slot_back(
    app, send, vonage_api
):
    message_id = abandoned_send(app, "throttled", vonage_called=False)

    response = send(PAYLOAD, headers={"Idempotency-Key": "throttled"})

    assert response.status_code == 503
    assert response.json["type"].endswith("send-interrupted")
    assert response.json["id"] == message_id
    assert stored_message(app, message_id)["status"] == "failed"
    assert daily_count(app) == 0
    assert count_rows(app, "idempotency_keys") == 0
    assert len(vonage_api.calls) == 0


def test_abandoned_rows_settle_without_a_retry(app):
    from app.sending import settle_abandoned_sends

    called = abandoned_send(app, "a", vonage_called=True, daily_count=2)
    with app.extensions["db"].begin() as connection:
        connection.execute(text("DELETE FROM daily_send_counts"))
    not_called = abandoned_send(app, "b", vonage_called=False, daily_count=2)

    with app.extensions["db"].begin() as connection:
        settled = settle_abandoned_sends(connection, app.extensions["settings"])

    assert settled == 2
    assert stored_message(app, called)["status"] == "unknown"
    assert stored_message(app, not_called)["status"] == "failed"
    assert daily_count(app) == 1


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("UPDATE", {}, Exception("database is locked")),
        PoolTimeout("QueuePool limit of size 10 overflow 20 reached"),
    ],
    ids=["database-locked", "pool-exhausted"],
)
def test_storage_failing_after_vonage_accepted_answers_202_and_writes_later(
    app, send, vonage_api, monkeypatch, failure
):
    """The outcome's write fails: 202 with the id, the key kept, the write deferred."""
    accepted(vonage_api, "aaaaaaaa-0000-4000-8000-000000000009")
    deferred = app.extensions["deferred_writes"]
    real_mark_sent = messages.mark_sent
    failures = iter([True])

    def flaky_mark_sent(connection, message_id, message_uuid):
        if next(failures, False):
            raise failure
        real_mark_sent(connection, message_id, message_uuid)

    monkeypatch.setattr("app.store.messages.mark_sent", flaky_mark_sent)
    headers = {"Idempotency-Key": "stored-later"}

    response = send(PAYLOAD, headers=headers)
    assert deferred.drain(10)
    retry = send(PAYLOAD, headers=headers)

    assert response.status_code == 202
    row = stored_message(app, response.json["id"])
    assert (row["status"], row["message_uuid"]) == (
        "submitted",
        "aaaaaaaa-0000-4000-8000-000000000009",
    )
    assert retry.status_code == 202
    assert retry.json == response.json
    assert len(vonage_api.calls) == 1


def test_throttle_storage_failing_fails_the_send_closed(app, send, vonage_api, monkeypatch):
    from redis.exceptions import TimeoutError as RedisTimeout

    hits = []

    def lost(*_args, **_kwargs):
        hits.append(1)
        raise RedisTimeout("Timeout reading from socket")

    monkeypatch.setattr(app.extensions["throttle"]._limiter, "hit", lost)

    response = send(PAYLOAD, headers={"Idempotency-Key": "no-slot"})

    assert response.status_code == 503
    # Asked once: a failing storage is not waited on a second time.
    assert hits == [1]
    assert response.json["type"].endswith("dependency-unavailable")
    with app.extensions["db"].connect() as connection:
        assert connection.execute(text("SELECT status FROM messages")).all() == [("failed",)]
    assert daily_count(app) == 0
    assert count_rows(app, "idempotency_keys") == 0
    assert len(vonage_api.calls) == 0


def test_rate_limit_headers_failing_after_the_send_keep_the_202(app, send, vonage_api, monkeypatch):
    accepted(vonage_api)

    def storage_died(self):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(
        "flask_limiter._extension.RequestLimit.remaining", property(storage_died), raising=False
    )
    response = send(PAYLOAD)

    assert response.status_code == 202
    assert response.json["id"]
    assert len(vonage_api.calls) == 1


def test_sends_beyond_the_cap_are_503_and_touch_nothing(make_app, vonage_api):
    app = make_app(SEND_SMS_MAX_IN_FLIGHT="1")
    cap = app.extensions["sends_in_flight"]
    with cap.slot():
        response = app.test_client().post(
            "/send-sms", json=PAYLOAD, headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert response.status_code == 503
    assert response.json["type"].endswith("sends-in-flight")
    assert response.headers["Retry-After"] == "1"
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


@pytest.mark.parametrize(("threads", "cap"), [(None, 72), ("8", 6), ("2", 1), ("1", 1)])
def test_the_cap_leaves_a_quarter_of_the_threads_to_webhooks(threads, cap):
    from app.config import load_settings

    environ = {"GUNICORN_THREADS": threads} if threads else {}
    assert load_settings(environ=environ).send_sms_max_in_flight == cap


def _commits_before_vonage(app, vonage_api) -> list[tuple[int, str, bool]]:
    """Accepts every send, noting when Vonage is called: the commits so far and
    the row's status and phase marker as another connection sees them."""
    from sqlalchemy import event

    from tests.support import MESSAGES_URL

    engine = app.extensions["db"]
    commits = []
    event.listen(engine, "commit", lambda _connection: commits.append(1))
    seen = []

    def vonage(request):
        message_id = json.loads(request.body)["client_ref"]
        with engine.connect() as connection:
            status, marked = connection.execute(
                text("SELECT status, vonage_called_at IS NOT NULL FROM messages WHERE id = :id"),
                {"id": message_id},
            ).one()
        seen.append((len(commits), status, bool(marked)))
        return 202, {}, json.dumps({"message_uuid": "aaaaaaaa-0000-4000-8000-000000000009"})

    vonage_api.add_callback("POST", MESSAGES_URL, callback=vonage, content_type="application/json")
    return seen


def test_a_free_slot_writes_the_row_already_marked_in_one_commit(app, send, vonage_api):
    seen = _commits_before_vonage(app, vonage_api)

    assert send(PAYLOAD).status_code == 202

    # One durable commit before the call: the row, with its phase marker.
    assert seen == [(1, "pending", True)]


def test_no_slot_at_once_writes_the_row_then_the_marker_after_the_wait(
    app, send, vonage_api, monkeypatch
):
    throttle = app.extensions["throttle"]
    monkeypatch.setattr(throttle, "try_acquire", lambda: False)
    waited = []
    monkeypatch.setattr(throttle, "acquire", lambda deadline: waited.append(deadline) or 0.0)
    seen = _commits_before_vonage(app, vonage_api)

    assert send(PAYLOAD).status_code == 202

    # The row first (a kill while waiting leaves it unmarked: settled `failed`),
    # then the marker once the slot is had.
    assert len(waited) == 1
    assert seen == [(2, "pending", True)]


def test_a_free_slot_is_not_taken_twice(app, send, vonage_api, monkeypatch):
    accepted(vonage_api)
    limiter = app.extensions["throttle"]._limiter
    hits = []
    real_hit = limiter.hit
    monkeypatch.setattr(limiter, "hit", lambda *args: hits.append(1) or real_hit(*args))

    assert send(PAYLOAD).status_code == 202

    assert len(hits) == 1


def test_a_keyed_send_claims_its_key_before_it_takes_a_slot(app, send, vonage_api):
    seen = _commits_before_vonage(app, vonage_api)

    assert send(PAYLOAD, headers={"Idempotency-Key": "claimed-first"}).status_code == 202

    # The claim first (a replay, 409 or 422 is answered there, with no throttle slot
    # taken), then the row with its phase marker.
    assert seen == [(2, "pending", True)]
    with app.extensions["db"].connect() as connection:
        assert connection.execute(text("SELECT response_status FROM idempotency_keys")).all() == [
            (202,)
        ]


class _NoWaiting(Exception):
    """The throttle had no slot free: the test stops the wait instead of spinning."""


@pytest.mark.parametrize("answer", ["replayed", "in-flight", "reused", "opted-out"])
def test_a_keyed_request_that_sends_nothing_leaves_the_throttle_slot_to_a_send(
    make_app, vonage_api, answer
):
    """A replay, a 409, a 422 or a refusal never calls Vonage, so it takes no slot of
    the throttle: the next send within the same second still finds one free."""
    from app.store import opt_outs

    app = make_app(VONAGE_MAX_SENDS_PER_SECOND="1")

    def no_waiting(_seconds):
        raise _NoWaiting

    app.config["ON_SLEEP"] = no_waiting
    accepted(vonage_api)
    owner, key = fingerprint(API_KEY), "k"
    body_hash = request_hash(CANONICAL if answer != "reused" else {**CANONICAL, "text": "Ho"})
    with app.extensions["db"].begin() as connection:
        if answer == "opted-out":
            opt_outs.opt_out(connection, TO.removeprefix("+"), None)
        else:
            idempotency.claim_idempotency_key(connection, owner, key, body_hash, timedelta(hours=1))
        if answer in ("replayed", "reused"):
            idempotency.complete_idempotency_key(connection, owner, key, 202, json.dumps({}))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key}

    first = client.post("/send-sms", json=PAYLOAD, headers=headers)
    assert first.status_code == {"replayed": 202, "in-flight": 409}.get(answer, 422)
    assert len(vonage_api.calls) == 0

    other = client.post(
        "/send-sms",
        json={"to": "+14155550101", "text": "Hi"},
        headers=headers | {"Idempotency-Key": "other"},
    )

    assert other.status_code == 202
    assert app.config["SLEEPS"] == []
    assert len(vonage_api.calls) == 1


def test_a_row_whose_commit_answer_was_lost_does_not_lose_the_message(
    app, send, vonage_api, monkeypatch
):
    """The row's COMMIT lands but its answer is lost (a PostgreSQL connection dropped
    at COMMIT): the send answers 503 and Vonage is never called, so the key is freed
    and its retry sends, never a 504 "maybe sent" for a message Vonage never had.
    (The stray row, written with its marker, settles `unknown`: README, "What a
    send survives".)"""
    import app.sending.sender as sender_module
    from app.sending.abandoned import settle_abandoned_sends

    accepted(vonage_api)
    real = sender_module.grouped_write
    lost = []

    def answer_lost(engine, work, timeout=None, **options):
        result = real(engine, work, timeout, **options)
        if not lost and getattr(work, "__name__", "") == "create":
            lost.append(work)
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
        return result

    monkeypatch.setattr(sender_module, "grouped_write", answer_lost)
    response = send(PAYLOAD, headers={"Idempotency-Key": "lost-answer"})
    assert response.status_code == 503
    assert len(vonage_api.calls) == 0

    long_ago = utcnow() - timedelta(hours=1)
    with app.extensions["db"].begin() as connection:
        connection.execute(text("UPDATE messages SET created_at = :t"), {"t": long_ago})
        connection.execute(
            text("UPDATE idempotency_keys SET in_flight_until = :t"), {"t": long_ago}
        )
        settle_abandoned_sends(connection, app.extensions["settings"])
    monkeypatch.setattr(sender_module, "grouped_write", real)
    retry = send(PAYLOAD, headers={"Idempotency-Key": "lost-answer"})
    assert retry.status_code == 202
    assert "Idempotent-Replayed" not in retry.headers
    assert len(vonage_api.calls) == 1
