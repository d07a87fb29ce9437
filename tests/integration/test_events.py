"""Events pushed to client services, under gunicorn with the Procfile's `worker:`.

The app runs as `web:` (gunicorn) and the dispatcher as `worker:`
(`flask --app app dispatch`), beside the Vonage simulator and local receivers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.conftest import fresh_postgres_database, wait_until
from tests.receivers import Receiver, Reply
from tests.support import API_KEY, OTHER_API_KEY, SIGNATURE_SECRET, inbound_payload
from tests.support import signed_headers as vonage_signed_headers

pytestmark = pytest.mark.integration

EVENT_SETTINGS = {"API_KEYS": f"{API_KEY},{OTHER_API_KEY}", "EVENT_RETRY_SCHEDULE": "0.2,0.2,0.2"}


@pytest.fixture(scope="module")
def event_stack(start_stack):
    with start_stack(**EVENT_SETTINGS) as stack:
        yield stack


def call(stack, method, path, key=API_KEY, **kwargs):
    return requests.request(
        method,
        f"{stack.app_url}{path}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        **kwargs,
    )


def subscribe(stack, url, key=API_KEY, **fields):
    response = call(
        stack, "POST", "/subscriptions", key, json={"url": url, "events": ["*"], **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


def unsubscribe(stack, subscription, key=API_KEY):
    assert call(stack, "DELETE", f"/subscriptions/{subscription['id']}", key).status_code == 204


def post_inbound(stack, sender, text, message_uuid):
    body = json.dumps(inbound_payload(text, sender=sender, message_uuid=message_uuid)).encode()
    response = requests.post(
        f"{stack.app_url}/webhooks/inbound",
        data=body,
        headers=vonage_signed_headers(body, SIGNATURE_SECRET),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_replies_and_receipts_arrive_by_push_for_the_key_that_sent(event_stack):
    stack = event_stack
    with Receiver() as alice_hook, Receiver() as bob_hook, stack.worker():
        alice = subscribe(stack, alice_hook.url)
        bob = subscribe(stack, bob_hook.url, key=OTHER_API_KEY)
        sent = stack.send({"to": "+14155550100", "text": "Your table is ready"}).json()
        call(stack, "POST", "/send-sms", OTHER_API_KEY, json={"to": "+14155550101", "text": "Hi"})

        stack.sim("POST", "/_sim/inbound", json={"from": "14155550100", "text": "On my way"})
        stack.sim("POST", "/_sim/inbound", json={"from": "14155550101", "text": "Who is this?"})

        def alice_has_all():
            events = alice_hook.verified(alice["secret"])
            kinds = [(e["type"], e["data"]["status"]) for e in events]
            return (
                ("message.received", "received") in kinds
                and (
                    "message.status",
                    "delivered",
                )
                in kinds
                and events
            )

        events = wait_until(alice_has_all, what="the reply and the receipt at Alice's endpoint")
        wait_until(
            lambda: any(e["type"] == "message.received" for e in bob_hook.verified(bob["secret"])),
            what="Bob's reply",
        )
        unsubscribe(stack, alice)
        unsubscribe(stack, bob, OTHER_API_KEY)

    statuses = [e for e in events if e["type"] == "message.status"]
    assert all(e["data"]["id"] == sent["id"] for e in statuses)
    replies = [e for e in events if e["type"] == "message.received"]
    assert [e["data"]["text"] for e in replies] == ["On my way"]
    bob_events = bob_hook.verified(bob["secret"])
    assert [e["data"]["text"] for e in bob_events if e["type"] == "message.received"] == [
        "Who is this?"
    ]
    assert all(e["data"].get("text") != "On my way" for e in bob_events)


def test_a_dispatcher_killed_mid_delivery_delivers_after_restart_with_the_same_id(event_stack):
    stack = event_stack
    with Receiver(lambda index: Reply(204, delay=60 if index == 0 else 0)) as hook:
        subscription = subscribe(stack, hook.url, scope="all", events=["message.received"])
        with stack.worker("doomed-worker") as doomed:
            post_inbound(stack, "14155550177", "Hello", "bbbbbbbb-0000-4000-8000-000000000001")
            wait_until(lambda: hook.received, what="the first attempt")
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=10)
        with stack.worker("next-worker"):
            wait_until(lambda: len(hook.received) >= 2, what="the delivery after the restart")

            def delivered():
                events = call(stack, "GET", "/events", params={"type": "message.received"})
                found = [e for e in events.json()["events"] if e["id"] == ids[0]]
                return found and found[0]["status"] == "delivered"

            ids = [request.headers["webhook-id"] for request in hook.received]
            wait_until(delivered, what="the event shown as delivered")
        unsubscribe(stack, subscription)

    assert len(set(ids)) == 1
    assert hook.verified(subscription["secret"])[1]["data"]["text"] == "Hello"


def test_a_slow_endpoint_never_holds_up_a_fast_one(event_stack):
    stack = event_stack
    with (
        Receiver(lambda index: Reply(204, delay=60)) as slow,
        Receiver() as fast,
        stack.worker(),
    ):
        slow_sub = subscribe(stack, slow.url, scope="all", events=["message.received"])
        fast_sub = subscribe(stack, fast.url, scope="all", events=["message.received"])
        for number in range(10):
            post_inbound(
                stack, "14155550166", f"msg {number}", f"cccccccc-0000-4000-8000-{number:012d}"
            )

        wait_until(lambda: len(fast.received) == 10, what="every event at the fast endpoint")
        assert len(slow.received) == 1
        slow.release.set()
        unsubscribe(stack, slow_sub)
        unsubscribe(stack, fast_sub)


def test_private_destinations_are_refused_outside_development(start_stack):
    with start_stack(EVENT_ALLOW_PRIVATE_URLS="false") as stack:
        for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://[::1]/x"):
            response = call(stack, "POST", "/subscriptions", json={"url": url, "events": ["*"]})
            assert response.status_code == 422, url
            assert response.headers["Content-Type"] == "application/problem+json"
        assert call(stack, "GET", "/subscriptions").json() == {"subscriptions": []}


@pytest.mark.skipif(not os.environ.get("TEST_POSTGRES_URL"), reason="needs TEST_POSTGRES_URL")
def test_two_dispatchers_on_postgresql_never_double_an_attempt(start_stack):
    events = 150
    with fresh_postgres_database(os.environ["TEST_POSTGRES_URL"], "sms_events_two") as url:
        with (
            start_stack(DATABASE_URL=url, **EVENT_SETTINGS) as stack,
            Receiver() as hooks_a,
            Receiver() as hooks_b,
        ):
            subscribe(stack, hooks_a.url, scope="all", events=["message.received"])
            subscribe(stack, hooks_b.url, scope="all", events=["message.received"])
            with stack.worker("worker-1"), stack.worker("worker-2"):
                with ThreadPoolExecutor(8) as pool:
                    list(
                        pool.map(
                            lambda n: post_inbound(
                                stack, "14155550155", f"n{n}", f"dddddddd-0000-4000-8000-{n:012d}"
                            ),
                            range(events),
                        )
                    )
                wait_until(
                    lambda: len(hooks_a.received) >= events and len(hooks_b.received) >= events,
                    what="every event at both endpoints",
                    timeout=60,
                )
                threading.Event().wait(1.0)  # a doubled attempt would arrive by now
            logs = (stack.workdir / "worker-1.log").read_text() + (
                stack.workdir / "worker-2.log"
            ).read_text()

    for hooks in (hooks_a, hooks_b):
        ids = [request.headers["webhook-id"] for request in hooks.received]
        assert len(ids) == events and len(set(ids)) == events
    assert "dispatcher started" in logs


def test_failed_answers_are_retried_with_the_same_id_then_given_up_or_disabled(event_stack):
    """Each receiver answers badly first (or always); the worker's schedule is 0.2 s x 3."""
    stack = event_stack
    first_then_ok = {
        "client error": Reply(400),
        "dropped connection": Reply(close=True),
        "redirect": Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"}),
        "busy": Reply(503, {"Retry-After": "1"}),
    }
    scripts = {
        name: (lambda index, reply=reply: reply if index == 0 else Reply(204))
        for name, reply in first_then_ok.items()
    }
    scripts["always failing"] = lambda index: Reply(500)
    scripts["gone"] = lambda index: Reply(410)
    receivers = {name: Receiver(script) for name, script in scripts.items()}
    with contextlib.ExitStack() as running:
        for receiver in receivers.values():
            running.enter_context(receiver)
        running.enter_context(stack.worker())
        subscriptions = {
            name: subscribe(stack, receiver.url, scope="all", events=["message.received"])
            for name, receiver in receivers.items()
        }
        post_inbound(stack, "14155550144", "Retry me", "ffffffff-0000-4000-8000-000000000001")

        def settled():
            events = call(stack, "GET", "/events", params={"type": "message.received"}).json()
            (event,) = [e for e in events["events"] if e["data"]["text"] == "Retry me"]
            return event if event["status"] == "failed" else None

        event = wait_until(settled, what="every delivery delivered or given up")
        gone = call(stack, "GET", f"/subscriptions/{subscriptions['gone']['id']}").json()
        enabled = call(
            stack, "PATCH", f"/subscriptions/{gone['id']}", json={"enabled": True}
        ).json()
        call(stack, "POST", f"/events/{event['id']}/redeliver")
        wait_until(lambda: len(receivers["gone"].received) == 2, what="the redelivery")
        for subscription in subscriptions.values():
            unsubscribe(stack, subscription)

    by_subscription = {delivery["subscription_id"]: delivery for delivery in event["deliveries"]}
    for name, receiver in receivers.items():
        ids = {request.headers["webhook-id"] for request in receiver.received}
        assert ids == {event["id"]}, name
        verified = receiver.verified(subscriptions[name]["secret"])
        assert {e["data"]["text"] for e in verified} == {"Retry me"}, name
        delivery = by_subscription[subscriptions[name]["id"]]
        if name in first_then_ok:
            assert (delivery["status"], delivery["attempts"]) == ("delivered", 2), name
    busy = receivers["busy"].received
    assert busy[1].at - busy[0].at >= 1.0  # Retry-After, not the 0.2 s of the schedule
    failing = by_subscription[subscriptions["always failing"]["id"]]
    assert (failing["status"], failing["attempts"], failing["last_status_code"]) == (
        "failed",
        4,
        500,
    )
    assert gone["enabled"] is False and gone["disabled_reason"]
    assert enabled["enabled"] is True
