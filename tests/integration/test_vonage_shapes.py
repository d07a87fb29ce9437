"""Vonage's real payloads end to end: the simulator (under gunicorn, over TLS)
sends what Vonage sends, and the app under gunicorn keeps it."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest

from tests.integration.conftest import wait_until
from tests.support import clean_env

pytestmark = pytest.mark.integration


def inject(stack, **body):
    response = stack.sim("POST", "/_sim/inbound", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def dead_letters_cli(stack, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(DATABASE_URL=f"sqlite:///{stack.workdir / 'sms.db'}")
    command = [sys.executable, "-m", "flask", "--app", "app", "dead-letters", *args]
    return subprocess.run(
        command, env=env, cwd=stack.workdir, capture_output=True, text=True, timeout=60
    )


def test_sends_pin_v1_webhooks_and_keep_the_destination_network(stack):
    response = stack.send({"to": "+14155550100", "text": "Which network?"})

    assert response.status_code == 202, response.text
    [received] = stack.sim_requests_for(response.json()["id"])
    assert received["request"]["webhook_version"] == "v1"

    def delivered():
        message = stack.message(response.json()["message_uuid"])
        return message if message["status"] == "delivered" else None

    message = wait_until(delivered, what="the message to be delivered")
    assert [event["network_code"] for event in message["events"]] == ["310260", "310260"]


def test_a_long_inbound_sms_keeps_segments_usage_and_network(stack):
    injected = inject(stack, **{"from": "14155550131", "text": "x" * 200})

    assert injected["response_status"] == 200
    message = stack.message(injected["message_uuid"])
    assert message["segments"] == 2
    assert (message["price"], message["currency"], message["network_code"]) == (
        "0.0057",
        "EUR",
        "310260",
    )


def test_whatsapp_stop_is_kept_as_whatsapp_and_opts_nobody_out_of_sms(stack):
    injected = inject(stack, **{"from": "14155550132", "text": "STOP", "channel": "whatsapp"})

    assert injected["response_status"] == 200
    message = stack.message(injected["message_uuid"])
    assert (message["channel"], message["text"]) == ("whatsapp", "STOP")
    response = stack.send({"to": "+14155550132", "text": "Your code is 1234"})
    assert response.status_code == 202, response.text


def test_mms_image_keeps_its_media_and_is_found_by_channel(stack):
    injected = inject(
        stack,
        **{
            "from": "14155550133",
            "channel": "mms",
            "message_type": "image",
            "media_url": "https://example.com/receipt.jpg",
        },
    )

    assert injected["response_status"] == 200
    listed = stack.app_get("/messages", channel="mms").json()["messages"]
    [message] = [m for m in listed if m["message_uuid"] == injected["message_uuid"]]
    assert (message["message_type"], message["media_url"], message["text"]) == (
        "image",
        "https://example.com/receipt.jpg",
        None,
    )


def test_a_v0_1_event_is_answered_200_kept_and_listed_by_the_operator_command(stack):
    injected = inject(
        stack, **{"from": "14155550134", "text": "old shape", "webhook_version": "v0.1"}
    )

    assert injected["response_status"] == 200
    assert stack.app_get(f"/messages/{injected['message_uuid']}").status_code == 404
    listed = dead_letters_cli(stack, "list", "--body")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "webhook_version" in listed.stdout
    assert injected["message_uuid"] in listed.stdout
    metrics = wait_until(
        lambda: (
            (body := stack.app_get("/metrics").text) and 'outcome="dead_letter"' in body and body
        ),
        what="the dead letter in /metrics",
    )
    assert "sms_webhook_dead_letters_total" in metrics


def test_a_429_without_retry_after_is_retried_after_a_backoff(stack):
    stack.faults(status=429, times=1)

    response = stack.send({"to": "+14155550100", "text": "Rate limited"})

    assert response.status_code == 202, response.text
    first, second = stack.sim_requests_for(response.json()["id"])
    assert (first["response_status"], second["response_status"]) == (429, 202)
    waited = datetime.fromisoformat(second["received_at"]) - datetime.fromisoformat(
        first["received_at"]
    )
    assert waited.total_seconds() >= 0.25
