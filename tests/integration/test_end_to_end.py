"""The whole flow, over real HTTP: the app under gunicorn, the Vonage simulator
over TLS, signed webhooks back into the app, SQLite shared by two workers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from tests.integration.conftest import Stack, wait_until
from tests.support import TO, VONAGE_NUMBER, clean_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_stack(start_stack) -> Iterator[Stack]:
    """A stack of this module's own: its tests list whole directions and numbers."""
    with start_stack() as stack:
        yield stack


def settled(stack, identifier: str, status: str):
    def check():
        message = stack.message(identifier)
        return message if message["status"] == status else None

    return wait_until(check, what=f"message {identifier} to be {status}")


def test_sent_message_is_delivered_with_its_status_history(stack):
    response = stack.send({"to": TO, "text": "Hello from the e2e test", "client_ref": "order-7"})

    assert response.status_code == 202, response.text
    sent = response.json()
    assert sent["status"] == "submitted"
    message = settled(stack, sent["message_uuid"], "delivered")
    assert message["id"] == sent["id"]
    assert message["client_ref"] == "order-7"
    assert [event["status"] for event in message["events"]] == ["submitted", "delivered"]
    assert message["events"][0]["price"] == "0.0333"
    assert message["events"][0]["currency"] == "EUR"
    [received] = stack.sim_requests_for(sent["id"])
    assert received["request"] == {
        "to": "14155550100",
        "from": VONAGE_NUMBER,
        "text": "Hello from the e2e test",
        "client_ref": sent["id"],
        "channel": "sms",
        "message_type": "text",
        "webhook_version": "v1",
    }
    assert received["response_status"] == 202


def test_rejected_number_settles_as_rejected_with_vonage_error(stack):
    response = stack.send({"to": "+14155550110", "text": "Nobody home"})

    assert response.status_code == 202, response.text
    message = settled(stack, response.json()["message_uuid"], "rejected")
    assert message["error"]["title"] == "1250"
    assert [event["status"] for event in message["events"]] == ["rejected"]


def test_inbound_sms_is_stored(stack):
    injected = stack.sim("POST", "/_sim/inbound", json={"from": "14155550123", "text": "Hi there"})

    assert injected.status_code == 200
    assert injected.json()["response_status"] == 200
    listed = stack.app_get("/messages", direction="inbound", number="14155550123").json()
    [message] = listed["messages"]
    assert message["message_uuid"] == injected.json()["message_uuid"]
    assert message["text"] == "Hi there"
    assert message["to"] == VONAGE_NUMBER
    assert message["status"] == "received"


def test_inbound_stop_from_the_command_line_opts_the_sender_out(stack):
    command = [
        sys.executable, "-m", "app.simulator", "inbound",
        "--from", "14155550124", "--text", " stop ",
        "--port", str(stack.sim_port), "--cert-dir", str(stack.cert_dir),
    ]  # fmt: skip
    result = subprocess.run(
        command, env=clean_env(), cwd=stack.workdir, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr

    response = stack.send({"to": "+14155550124", "text": "Are you still there?"})

    assert response.status_code == 422
    assert response.json()["type"].endswith("opted-out")
    received = stack.sim("GET", "/_sim/messages").json()["messages"]
    assert not [m for m in received if m["request"].get("to") == "14155550124"]


def test_a_503_from_vonage_is_retried_and_the_send_succeeds(stack):
    stack.faults(status=503, times=1)

    response = stack.send({"to": TO, "text": "Try again"})

    assert response.status_code == 202, response.text
    attempts = stack.sim_requests_for(response.json()["id"])
    assert [attempt["response_status"] for attempt in attempts] == [503, 202]
    assert attempts[1]["message_uuid"] == response.json()["message_uuid"]


def test_a_429_is_retried_after_the_retry_after_pause(stack):
    stack.faults(status=429, retry_after=1, times=1)

    response = stack.send({"to": TO, "text": "Slow down"})

    assert response.status_code == 202, response.text
    first, second = stack.sim_requests_for(response.json()["id"])
    assert (first["response_status"], second["response_status"]) == (429, 202)
    waited = datetime.fromisoformat(second["received_at"]) - datetime.fromisoformat(
        first["received_at"]
    )
    assert waited.total_seconds() >= 1


def test_status_webhook_that_overtakes_the_send_answer_is_kept(stack):
    stack.faults(webhook_first=True, times=1)

    response = stack.send({"to": TO, "text": "Race"})

    assert response.status_code == 202, response.text
    message_uuid = response.json()["message_uuid"]
    attempts = stack.webhooks_for(message_uuid)
    assert [(a["status"], a["response_status"]) for a in attempts] == [
        ("submitted", 200),
        ("delivered", 200),
    ]
    message = stack.message(message_uuid)
    assert message["status"] == "delivered"
    assert message["id"] == response.json()["id"]
    assert [event["status"] for event in message["events"]] == ["submitted", "delivered"]


def test_a_redelivered_status_webhook_is_stored_once(stack):
    stack.faults(duplicate_webhooks=True, times=1)

    response = stack.send({"to": TO, "text": "Twice"})

    assert response.status_code == 202, response.text
    message_uuid = response.json()["message_uuid"]
    attempts = wait_until(
        lambda: (found := stack.webhooks_for(message_uuid)) and len(found) == 4 and found,
        what="four webhook deliveries",
    )
    assert [a["response_status"] for a in attempts] == [200, 200, 200, 200]
    message = stack.message(message_uuid)
    assert message["status"] == "delivered"
    assert [event["status"] for event in message["events"]] == ["submitted", "delivered"]


def test_64_concurrent_sends_are_all_accepted(stack):
    """64 at once on 2 workers of 96 threads: each is accepted, or refused at once with
    503 `sends-in-flight` (a quarter of the threads stays free for webhooks) and
    accepted when retried after its Retry-After; never sent twice."""
    numbers = [f"+141555501{n:02d}" for n in range(30, 94)]

    def send_politely(to: str) -> requests.Response:
        for _ in range(20):
            response = stack.send({"to": to, "text": "Concurrent hello"})
            if response.status_code != 503:
                return response
            assert response.json()["type"].endswith("sends-in-flight"), response.text
            time.sleep(float(response.headers["Retry-After"]))
        return response

    with ThreadPoolExecutor(max_workers=64) as pool:
        responses = list(pool.map(send_politely, numbers))

    assert [r.status_code for r in responses] == [202] * 64
    assert len({r.json()["message_uuid"] for r in responses}) == 64
    listed = stack.app_get("/messages", direction="outbound", limit=200).json()["messages"]
    assert len([m for m in listed if m["text"] == "Concurrent hello"]) == 64


def test_timeout_answers_504_and_a_later_webhook_settles_the_message(start_stack):
    with start_stack(VONAGE_TIMEOUT_SECONDS="1") as stack:
        stack.faults(hang_seconds=60, times=1)

        response = stack.send({"to": TO, "text": "Are you there, Vonage?"})

        assert response.status_code == 504, response.text
        problem = response.json()
        assert problem["type"].endswith("vonage-outcome-unknown")
        unknown = stack.message(problem["id"])
        assert unknown["status"] == "unknown"
        assert unknown["message_uuid"] is None

        stack.sim("POST", "/_sim/release")

        message = settled(stack, problem["id"], "delivered")
        [received] = stack.sim_requests_for(problem["id"])
        assert message["message_uuid"] == received["message_uuid"]
        assert [event["status"] for event in message["events"]] == ["submitted", "delivered"]
