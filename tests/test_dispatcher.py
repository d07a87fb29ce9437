"""The dispatcher against real local receivers: signatures, retries, 410, isolation, SSRF."""

from __future__ import annotations

import base64
import socket
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from app.events.dispatcher import Dispatcher
from app.store import outbox as outbox_store
from app.store.dialect import utcnow
from app.store.engine import write_transaction
from tests.receivers import Receiver, Reply
from tests.support import OTHER_API_KEY, accepted, auth_headers, inbound_payload, status_payload

ALICE = "14155550100"


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def subscribe(client, url, **fields):
    response = client.post(
        "/subscriptions", json={"url": url, "events": ["*"], **fields}, headers=auth_headers()
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def reply_from(client, signed_webhook, text_body="Sounds good", sender=ALICE):
    response = signed_webhook("/webhooks/inbound", inbound_payload(text_body, sender=sender))
    assert response.status_code == 200


def dispatcher(app, **kwargs) -> Dispatcher:
    return Dispatcher(app.extensions["db"], app.extensions["settings"], **kwargs)


def deliveries(app):
    with app.extensions["db"].connect() as connection:
        rows = connection.execute(select(outbox_store.deliveries).order_by("id"))
        return [dict(row._mapping) for row in rows]


def test_an_event_is_delivered_signed_as_standard_webhooks(
    app, client, send, vonage_api, signed_webhook, receiver
):
    vonage_api.add_passthru("http://127.0.0.1")
    subscription = subscribe(client, receiver.url, scope="all")
    accepted(vonage_api, "aaaaaaaa-0000-4000-8000-0000000000aa")
    sent = send({"to": "+" + ALICE, "text": "Hi"}).get_json()
    signed_webhook("/webhooks/status", status_payload(sent["message_uuid"], "delivered"))

    assert dispatcher(app).run_until_idle() == 1

    [event] = receiver.verified(subscription["secret"])
    [request] = receiver.received
    assert request.headers["webhook-id"].startswith("evt_")
    assert request.headers["content-type"] == "application/json"
    assert event["type"] == "message.status"
    assert set(event) == {"type", "timestamp", "data"}
    assert event["data"]["id"] == sent["id"] and event["data"]["status"] == "delivered"
    feed = client.get("/events", headers=auth_headers()).get_json()["events"]
    assert feed[0]["id"] == request.headers["webhook-id"]
    assert feed[0]["status"] == "delivered" and feed[0]["deliveries"][0]["attempts"] == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(b"x" * 32).decode()).verify(request.body, request.headers)


def test_failed_attempts_are_retried_with_the_same_id_then_given_up(
    make_app, signed_webhook, receiver
):
    app = make_app(EVENT_RETRY_SCHEDULE="0,0")
    client = app.test_client()
    receiver.script = lambda index: Reply(500)
    subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)

    work = dispatcher(app)
    assert work.run_once() == 1
    assert work.run_once() == 1
    assert work.run_once() == 1
    assert work.run_once() == 0

    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len(receiver.received) == 3
    [row] = deliveries(app)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("failed", 3, 500)


def test_retries_follow_the_schedule_and_honour_retry_after(app, client, signed_webhook, receiver):
    receiver.script = lambda index: [Reply(502), Reply(503, {"Retry-After": "3600"})][index]
    subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)
    now = utcnow()
    clock = {"now": now}
    work = dispatcher(app, clock=lambda: clock["now"])

    work.run_once()
    first = deliveries(app)[0]
    clock["now"] = first["next_attempt_at"]
    work.run_once()
    second = deliveries(app)[0]

    assert first["next_attempt_at"] - now == timedelta(seconds=5)
    assert second["next_attempt_at"] - clock["now"] == timedelta(seconds=3600)
    assert second["attempts"] == 2 and second["status"] == "pending"


@pytest.mark.parametrize("retry_after", ["\u00b2", "\u00b9\u00b2\u00b3"])
def test_a_retry_after_of_other_digits_is_ignored_not_a_failed_lane(
    app, client, signed_webhook, receiver, retry_after
):
    """str.isdigit() is true for superscripts, which float() refuses: the lane died
    on every attempt, and the delivery never settled."""
    receiver.script = lambda index: Reply(503, {"Retry-After": retry_after})
    subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)
    now = utcnow()

    assert dispatcher(app, clock=lambda: now).run_once() == 1

    [row] = deliveries(app)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 503)
    assert row["next_attempt_at"] - now == timedelta(seconds=5)


def test_410_disables_the_subscription(app, client, signed_webhook, receiver):
    receiver.script = lambda index: Reply(410)
    created = subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)
    reply_from(client, signed_webhook)

    dispatcher(app).run_until_idle()
    reply_from(client, signed_webhook)
    dispatcher(app).run_until_idle()

    assert len(receiver.received) == 1
    assert {row["status"] for row in deliveries(app)} == {"failed"}
    assert len(deliveries(app)) == 2
    shown = client.get(f"/subscriptions/{created['id']}", headers=auth_headers()).get_json()
    assert shown["enabled"] is False


def test_redirects_are_not_followed(app, client, signed_webhook, receiver):
    with Receiver() as elsewhere:
        receiver.script = lambda index: Reply(307, {"Location": elsewhere.url})
        subscribe(client, receiver.url, scope="all")
        reply_from(client, signed_webhook)

        dispatcher(app).run_until_idle()

        assert len(receiver.received) == 1 and elsewhere.received == []
    [row] = deliveries(app)
    assert (row["status"], row["last_status_code"]) == ("pending", 307)


def test_during_rotation_both_secrets_sign(app, client, signed_webhook, receiver):
    created = subscribe(client, receiver.url, scope="all")
    rotated = client.post(
        f"/subscriptions/{created['id']}/rotate-secret", headers=auth_headers()
    ).get_json()
    reply_from(client, signed_webhook)

    dispatcher(app).run_until_idle()

    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert receiver.verified(created["secret"]) == receiver.verified(rotated["secret"])


def test_a_refused_connection_is_retried(make_app, signed_webhook):
    app = make_app(EVENT_RETRY_SCHEDULE="0")
    client = app.test_client()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subscribe(client, f"http://127.0.0.1:{port}/hook", scope="all")
    reply_from(client, signed_webhook)

    dispatcher(app).run_until_idle()

    [row] = deliveries(app)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "failed",
        2,
        "connection failed",
    )


def test_private_destinations_are_refused_again_at_connect_time(make_app, signed_webhook, receiver):
    app = make_app()
    client = app.test_client()
    subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)
    strict = make_app(EVENT_ALLOW_PRIVATE_URLS="false", DATABASE_URL=str(app.extensions["db"].url))

    dispatcher(strict).run_once()

    assert receiver.received == []
    [row] = deliveries(app)
    assert row["status"] == "pending" and row["last_error"].startswith("refused")


def test_dns_rebinding_after_subscribe_is_refused(make_app, signed_webhook, receiver, monkeypatch):
    app = make_app(EVENT_ALLOW_PRIVATE_URLS="false")
    client = app.test_client()
    port = receiver.server.server_address[1]
    answers = iter(["93.184.215.14", "127.0.0.1"])

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "hooks.example.com":
            address = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    subscribe(client, f"http://hooks.example.com:{port}/hook", scope="all")
    reply_from(client, signed_webhook)

    dispatcher(app).run_once()

    assert receiver.received == []
    assert deliveries(app)[0]["last_error"].startswith("refused")


def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    app, client, signed_webhook, receiver, monkeypatch
):
    port = receiver.server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "hooks.example.com":
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    subscribe(client, f"http://hooks.example.com:{port}/hook?x=1", scope="all")
    lookups.clear()
    reply_from(client, signed_webhook)

    dispatcher(app).run_until_idle()

    [request] = receiver.received
    assert request.headers["host"] == f"hooks.example.com:{port}"
    assert request.path == "/hook?x=1"
    assert lookups == ["hooks.example.com"]


def test_a_slow_endpoint_never_holds_up_a_fast_one(app, client, signed_webhook):
    with Receiver(lambda index: Reply(204, delay=30)) as slow, Receiver() as fast:
        subscribe(client, slow.url, scope="all")
        subscribe(client, fast.url, scope="all")
        for number in range(5):
            reply_from(client, signed_webhook, f"hello {number}")
        stop = threading.Event()
        worker = threading.Thread(target=dispatcher(app, threads=4).run, args=(stop,))
        worker.start()
        try:
            for _ in range(1200):
                if len(fast.received) == 5:
                    break
                stop.wait(0.05)
            assert len(fast.received) == 5
            # The slow endpoint still holds its first request (or, on a machine
            # so loaded that this took over the 10 s timeout, its retry).
            assert len(slow.received) <= 2
        finally:
            stop.set()
            slow.release.set()
            worker.join(timeout=30)


def test_a_lane_leased_by_another_dispatcher_is_left_alone(app, client, signed_webhook, receiver):
    subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)
    engine = app.extensions["db"]
    now = utcnow()
    with write_transaction(engine) as connection:
        [subscription_id] = outbox_store.lanes_with_work(connection, now, set())
        lane = outbox_store.claim_lane(
            connection, subscription_id, "other", now, now + timedelta(seconds=60), 10
        )
    assert lane is not None

    assert dispatcher(app).run_once() == 0
    assert receiver.received == []


def test_another_keys_delete_leaves_the_subscription_and_its_deliveries(
    app, client, signed_webhook, receiver
):
    subscription = subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)

    response = client.delete(
        f"/subscriptions/{subscription['id']}", headers=auth_headers(OTHER_API_KEY)
    )

    assert response.status_code == 404
    [row] = deliveries(app)
    assert row["status"] == "pending"
    assert dispatcher(app).run_until_idle() == 1
    assert len(receiver.received) == 1
    assert deliveries(app)[0]["status"] == "delivered"


class _Trickler:
    """A raw 127.0.0.1 server that answers a byte at a time, never finishing in time."""

    def __init__(self, head: bytes, trickle: bytes) -> None:
        self._head, self._trickle = head, trickle
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(10)
        try:
            connection, _ = self._server.accept()
        except OSError:
            return
        with connection:
            try:
                connection.recv(65536)
                connection.sendall(self._head)
                for byte in self._trickle:
                    if self._done.wait(0.05):
                        break
                    connection.sendall(bytes([byte]))
            except OSError:
                pass

    def close(self) -> None:
        self._done.set()
        self._server.close()
        self._thread.join(timeout=10)


@pytest.mark.parametrize(
    "head, trickle",
    [
        (b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 400 + b"\r\n\r\n"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n", b"a" * 400),
    ],
    ids=["headers", "body"],
)
def test_an_attempt_trickled_past_its_deadline_is_a_timeout(head, trickle):
    from app.events.transport import Endpoint

    server = _Trickler(head, trickle)
    try:
        endpoint = Endpoint(server.url, https_only=False, allow_private=True, deadline=0.5)
        answer = endpoint.post(b"{}", {})
        endpoint.close()
    finally:
        server.close()

    assert not answer.ok
    assert (answer.status_code, answer.error) == (None, "timed out")


def test_the_lease_outlives_the_longest_lane():
    from app.events import dispatcher as module
    from app.events.transport import TIMEOUT_SECONDS

    longest = module.LANE_BUDGET_SECONDS + TIMEOUT_SECONDS + module.LEASE_MARGIN_SECONDS
    assert module.LEASE_SECONDS > longest


def test_a_subscription_disabled_by_410_is_enabled_again_and_redelivered(
    app, client, signed_webhook, receiver
):
    receiver.script = lambda index: Reply(410) if index == 0 else Reply(204)
    created = subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)
    dispatcher(app).run_until_idle()
    path = f"/subscriptions/{created['id']}"
    assert client.get(path, headers=auth_headers()).get_json()["enabled"] is False

    enabled = client.patch(path, json={"enabled": True}, headers=auth_headers())
    (event,) = client.get("/events", headers=auth_headers()).get_json()["events"]
    redelivered = client.post(f"/events/{event['id']}/redeliver", headers=auth_headers())
    reply_from(client, signed_webhook, "And another")
    dispatcher(app).run_until_idle()

    assert enabled.status_code == 200
    assert enabled.get_json()["enabled"] is True and enabled.get_json()["disabled_at"] is None
    assert redelivered.status_code == 202
    texts = [event["data"]["text"] for event in receiver.verified(created["secret"])]
    assert texts == ["Sounds good", "Sounds good", "And another"]
    assert {row["status"] for row in deliveries(app)} == {"delivered"}


def test_a_new_url_takes_the_deliveries_still_waiting_at_once(
    app, client, signed_webhook, receiver
):
    with Receiver(lambda index: Reply(503)) as old:
        created = subscribe(client, old.url, scope="all")
        reply_from(client, signed_webhook)
        dispatcher(app).run_once()
        moved = client.patch(
            f"/subscriptions/{created['id']}", json={"url": receiver.url}, headers=auth_headers()
        )
        dispatcher(app).run_until_idle()  # due at once at the new URL, not in 5 s

    assert moved.status_code == 200 and moved.get_json()["url"] == receiver.url
    assert len(old.received) == 1
    (event,) = receiver.verified(created["secret"])
    assert event["data"]["text"] == "Sounds good"
    assert old.received[0].headers["webhook-id"] == receiver.received[0].headers["webhook-id"]


def test_an_international_host_name_is_sent_in_its_ascii_form(
    app, client, signed_webhook, receiver, monkeypatch
):
    port = receiver.server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host in ("例え.jp", "xn--r8jz45g.jp"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    subscribe(client, f"http://例え.jp:{port}/hook", scope="all")
    reply_from(client, signed_webhook)

    dispatcher(app).run_until_idle()

    [request] = receiver.received
    assert request.headers["host"] == f"xn--r8jz45g.jp:{port}"
    assert [row["status"] for row in deliveries(app)] == ["delivered"]


def test_an_attempt_that_raises_counts_as_a_failed_attempt(
    app, client, signed_webhook, receiver, monkeypatch
):
    created = subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)

    def broken_post(self, body, headers):
        raise UnicodeEncodeError("latin-1", "例", 0, 1, "not encodable")

    monkeypatch.setattr("app.events.transport.Endpoint.post", broken_post)
    attempts = dispatcher(app).run_until_idle()

    [row] = deliveries(app)
    assert attempts == 1
    assert row["status"] == "pending" and row["attempts"] == 1
    assert row["last_error"] == "UnicodeEncodeError"
    assert row["next_attempt_at"] > utcnow()
    assert created["id"] == row["subscription_id"]


def test_redeliver_leaves_an_attempt_in_flight_to_its_lane(app, client, signed_webhook, receiver):
    """Clearing the lease would let a second dispatcher send the event while the first still is."""
    subscribe(client, receiver.url, scope="all")
    reply_from(client, signed_webhook)
    engine = app.extensions["db"]
    now = utcnow()
    with write_transaction(engine) as connection:
        [subscription_id] = outbox_store.lanes_with_work(connection, now, set())
        lane = outbox_store.claim_lane(
            connection, subscription_id, "other", now, now + timedelta(seconds=60), 10
        )
    (event,) = client.get("/events", headers=auth_headers()).get_json()["events"]

    redelivered = client.post(f"/events/{event['id']}/redeliver", headers=auth_headers())

    assert redelivered.status_code == 202
    assert dispatcher(app).run_once() == 0
    assert receiver.received == []
    with write_transaction(engine) as connection:
        settled = outbox_store.settle_many(
            connection,
            "other",
            [{"id": lane.deliveries[0]["id"], "status": "delivered", "attempts": 1}],
        )
    assert settled == 1
