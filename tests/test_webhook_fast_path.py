"""The webhooks' lean WSGI path (app/webhooks/fast_path.py) against the full Flask stack.

Each test sends the same kind of event both ways (`FULL_STACK` in the environ skips
the fast path) and checks that nothing a client or an operator sees differs: the
answer, the stored rows, the access line, the metrics. Where the fast path does not
answer, the request must reach the blueprint with its body intact.
"""

import json
import logging
import time
import uuid

import pytest
from sqlalchemy import text

from app.webhooks import intake
from app.webhooks.fast_path import FULL_STACK
from tests.support import (
    count_rows,
    inbound_payload,
    signed_headers,
    status_payload,
)

VOLATILE_COLUMNS = {"id", "message_uuid", "created_at", "updated_at", "vonage_called_at"}


def _post(client, path, payload, *, full_stack=False, headers=None, body=None):
    raw = body if body is not None else json.dumps(payload).encode()
    return client.post(
        path,
        data=raw,
        headers={**signed_headers(raw), **(headers or {})},
        environ_overrides={FULL_STACK: True} if full_stack else {},
    )


@pytest.fixture
def flask_views_counted(app):
    """How many requests reached Flask's dispatch (the fast path never does)."""
    calls = []
    dispatch = app.full_dispatch_request

    def counted():
        calls.append(1)
        return dispatch()

    app.full_dispatch_request = counted
    return calls


def _row(app, message_uuid):
    with app.extensions["db"].connect() as connection:
        row = connection.execute(
            text("SELECT * FROM messages WHERE message_uuid = :u"), {"u": message_uuid}
        ).one()
    return {key: value for key, value in row._mapping.items() if key not in VOLATILE_COLUMNS}


@pytest.mark.parametrize("full_stack", [False, True], ids=["fast", "full"])
def test_both_paths_give_the_same_answer_new_and_duplicate(app, client, full_stack):
    payload = inbound_payload()
    first = _post(client, "/webhooks/inbound", payload, full_stack=full_stack)
    again = _post(client, "/webhooks/inbound", payload, full_stack=full_stack)
    assert (first.status_code, first.data) == (200, b'{"duplicate":false,"status":"ok"}\n')
    assert (again.status_code, again.data) == (200, b'{"duplicate":true,"status":"ok"}\n')
    for response in (first, again):
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Content-Length"] == str(len(response.data))
        assert set(response.headers.keys()) == {"Content-Type", "Content-Length", "X-Request-ID"}
    assert count_rows(app, "messages") == 1


def test_the_fast_path_answers_without_flask_and_stores_what_flask_stores(
    app, client, flask_views_counted
):
    fast, full = inbound_payload("STOP"), inbound_payload("STOP", sender="14155550111")
    assert _post(client, "/webhooks/inbound", fast).status_code == 200
    assert flask_views_counted == []
    assert _post(client, "/webhooks/inbound", full, full_stack=True).status_code == 200
    assert flask_views_counted == [1]
    fast_row, full_row = _row(app, fast["message_uuid"]), _row(app, full["message_uuid"])
    assert fast_row.pop("from_number") == "14155550100"
    assert full_row.pop("from_number") == "14155550111"
    assert fast_row == full_row
    with app.extensions["db"].connect() as connection:
        opted_out = connection.execute(text("SELECT number FROM opt_outs ORDER BY number"))
        assert opted_out.scalars().all() == ["14155550100", "14155550111"]


def test_status_events_move_the_message_the_same_way_on_both_paths(app, client, send, vonage_api):
    from tests.support import accepted

    uuids = [str(uuid.uuid4()), str(uuid.uuid4())]
    for message_uuid in uuids:
        vonage_api.reset()
        accepted(vonage_api, message_uuid)
        assert send({"to": "+14155550100", "text": "hi"}).status_code == 202
    for message_uuid, full_stack in zip(uuids, (False, True), strict=True):
        event = status_payload(message_uuid, "delivered", usage={"price": "0.0075"})
        assert _post(client, "/webhooks/status", event, full_stack=full_stack).status_code == 200
    fast_row, full_row = (_row(app, message_uuid) for message_uuid in uuids)
    assert fast_row["status"] == "delivered"
    assert fast_row == full_row
    assert count_rows(app, "message_events") == 2


def test_the_access_line_and_the_metrics_are_the_same_on_both_paths(app, client, caplog):
    caplog.set_level(logging.INFO, logger="app.access")
    lines = []
    for full_stack in (False, True):
        before = _sample("sms_webhooks_total", kind="inbound", outcome="stored")
        latency = _sample(
            "http_request_duration_seconds_count",
            route="/webhooks/inbound",
            method="POST",
            status="200",
        )
        caplog.clear()
        response = _post(
            client,
            "/webhooks/inbound",
            inbound_payload(),
            full_stack=full_stack,
            headers={"X-Request-ID": f"trace-{full_stack}"},
        )
        assert response.headers["X-Request-ID"] == f"trace-{full_stack}"
        assert _sample("sms_webhooks_total", kind="inbound", outcome="stored") == before + 1
        assert (
            _sample(
                "http_request_duration_seconds_count",
                route="/webhooks/inbound",
                method="POST",
                status="200",
            )
            == latency + 1
        )
        (record,) = [r for r in caplog.records if r.getMessage() == "request"]
        assert record.request_id == f"trace-{full_stack}"
        lines.append(
            {
                name: getattr(record, name)
                for name in ("method", "route", "status", "channel", "sender", "duplicate")
            }
        )
    assert lines[0] == lines[1]
    assert lines[0]["sender"] == "*******0100"


def _sample(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_dead_letter_reaches_the_blueprint_with_its_body_intact(app, client):
    body = json.dumps({"message_uuid": str(uuid.uuid4()), "from": {"type": "sms"}}).encode()
    response = _post(client, "/webhooks/inbound", None, body=body)
    assert response.status_code == 200
    assert response.json == {"status": "ok", "duplicate": False, "dead_letter": True}
    with app.extensions["db"].connect() as connection:
        assert (
            connection.execute(text("SELECT body FROM dead_letters")).scalar_one() == body.decode()
        )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": None}, 503),
        ({"Authorization": "Bearer a.b.c"}, 401),
    ],
    ids=["unsigned", "malformed"],
)
def test_what_the_fast_path_refuses_is_answered_by_the_blueprint(
    app, client, flask_views_counted, headers, status
):
    raw = json.dumps(inbound_payload()).encode()
    sent = {**signed_headers(raw), **headers}
    response = client.post(
        "/webhooks/inbound", data=raw, headers={k: v for k, v in sent.items() if v}
    )
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert flask_views_counted == [1]
    assert count_rows(app, "messages") == 0


def test_a_signature_from_another_secret_is_401_problem(app, client):
    raw = json.dumps(inbound_payload()).encode()
    headers = signed_headers(raw, secret="another-secret-0123456789abcdefgh")
    response = client.post("/webhooks/inbound", data=raw, headers=headers)
    assert (response.status_code, response.mimetype) == (401, "application/problem+json")
    assert count_rows(app, "messages") == 0


def test_a_storage_failure_is_answered_503_by_the_blueprint_without_a_second_try(
    app, client, monkeypatch, caplog, flask_views_counted
):
    """A second attempt would double the wait for a locked database (10 s each)."""
    from sqlalchemy.exc import OperationalError

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(intake, "store", broken)
    before = _sample("sms_webhooks_total", kind="inbound", outcome="unavailable")
    response = _post(client, "/webhooks/inbound", inbound_payload())
    assert (response.status_code, response.mimetype) == (503, "application/problem+json")
    assert response.json["type"].endswith("dependency-unavailable")
    assert calls == [1]
    assert flask_views_counted == [1]
    assert _sample("sms_webhooks_total", kind="inbound", outcome="unavailable") == before + 1
    assert "webhook not stored" in caplog.text
    assert count_rows(app, "messages") == 0


def test_a_storage_failure_on_both_paths_is_503_and_stores_nothing(app, client, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr("app.webhooks.events.store.insert_inbound", broken)
    response = _post(client, "/webhooks/inbound", inbound_payload())
    assert (response.status_code, response.mimetype) == (503, "application/problem+json")
    assert count_rows(app, "messages") == 0


def test_without_a_signature_secret_the_blueprint_refuses(make_app):
    app = make_app(VONAGE_SIGNATURE_SECRET="")
    response = _post(app.test_client(), "/webhooks/inbound", inbound_payload())
    assert (response.status_code, response.mimetype) == (503, "application/problem+json")
    assert count_rows(app, "messages") == 0


def test_a_body_over_the_limit_is_413_and_never_stored(app, client):
    payload = inbound_payload("x" * (70 * 1024))
    response = _post(client, "/webhooks/inbound", payload)
    assert (response.status_code, response.mimetype) == (413, "application/problem+json")
    assert count_rows(app, "messages") == 0


def test_a_request_to_the_fast_path_starts_the_retention_sweeper(make_app):
    app = make_app(MESSAGE_RETENTION_DAYS="30")
    sweeper = app.extensions["retention"]
    sweeper.interval = 3600
    try:
        assert _post(app.test_client(), "/webhooks/inbound", inbound_payload()).status_code == 200
        assert sweeper._thread is not None
    finally:
        # Its first sweep runs at once: let it finish before the next test empties the tables.
        sweeper.stopped.set()
        if sweeper._thread is not None:
            sweeper._thread.join(10)


def _wsgi(app, raw: bytes, *, full_stack: bool, **environ_extra):
    """`raw` posted straight into the WSGI app, as a server other than gunicorn would."""
    import io

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhooks/inbound",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_AUTHORIZATION": signed_headers(raw)["Authorization"],
        **environ_extra,
    }
    if full_stack:
        environ[FULL_STACK] = True
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app.wsgi_app(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize("full_stack", [False, True], ids=["fast", "full"])
def test_a_content_length_of_5000_digits_is_answered_not_raised(app, full_stack):
    """Python refuses to read over 4 300 digits as a number: not a crash of the app."""
    raw = json.dumps(inbound_payload()).encode()
    status, headers, _ = _wsgi(app, raw, full_stack=full_stack, CONTENT_LENGTH="0" * 4999 + "5")
    assert headers["Content-Type"] == "application/problem+json", status
    assert count_rows(app, "messages") == 0


@pytest.mark.parametrize("full_stack", [False, True], ids=["fast", "full"])
def test_an_unexpected_error_while_storing_is_a_500_problem_not_a_server_page(
    app, monkeypatch, full_stack
):
    app.config["TESTING"] = False  # as in production: errors are rendered, not raised
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("a bug")

    monkeypatch.setattr(intake.events, "store_inbound", broken)
    raw = json.dumps(inbound_payload()).encode()
    status, headers, _ = _wsgi(app, raw, full_stack=full_stack)
    assert (status[:3], headers["Content-Type"]) == ("500", "application/problem+json")
    assert calls == [1]  # answered, not tried again


@pytest.mark.parametrize("full_stack", [False, True], ids=["fast", "full"])
def test_a_503_after_a_slow_storage_failure_reports_its_real_duration(
    app, client, monkeypatch, caplog, full_stack
):
    """The wait for a locked database is in the access line and the latency histogram,
    though on the fast path it is spent before Flask's own clock starts."""
    from sqlalchemy.exc import OperationalError

    def locked(*args, **kwargs):
        time.sleep(0.3)
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(intake, "store", locked)
    caplog.set_level(logging.INFO, logger="app.access")
    labels = {"route": "/webhooks/inbound", "method": "POST", "status": "503"}
    before = _sample("http_request_duration_seconds_sum", **labels)
    response = _post(client, "/webhooks/inbound", inbound_payload(), full_stack=full_stack)
    assert response.status_code == 503
    (record,) = [r for r in caplog.records if r.getMessage() == "request"]
    assert record.duration_ms >= 300
    assert _sample("http_request_duration_seconds_sum", **labels) - before >= 0.3
