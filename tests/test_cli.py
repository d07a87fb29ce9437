"""Operator commands: send-sms, webhook inbound|status, set-webhooks."""

from __future__ import annotations

import base64
import json

import pytest
import responses
from responses import matchers

from app.webhooks.signature import verify
from tests.conftest import MESSAGES_URL, SIGNATURE_SECRET, VONAGE_NUMBER, count_rows

DEPLOYMENT = "https://x.ngrok.app"
APPLICATION_ID = "00000000-0000-4000-8000-000000000000"
APPLICATION_URL = f"https://api.nexmo.com/v2/applications/{APPLICATION_ID}"
API_KEY, API_SECRET = "abcd1234", "account-secret-0123456789"
PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----\n"


def application(messages: dict | None = None) -> dict:
    """An application as the Application API's GET answers it."""
    capabilities = {
        "voice": {
            "webhooks": {
                "answer_url": {"address": "https://example.com/answer", "http_method": "GET"},
                "event_url": {"address": "https://example.com/event", "http_method": "POST"},
            }
        }
    }
    if messages is not None:
        capabilities["messages"] = messages
    return {
        "id": APPLICATION_ID,
        "name": "sms-service",
        "capabilities": capabilities,
        "keys": {"public_key": PUBLIC_KEY},
        "privacy": {"improve_ai": False},
        "_links": {"self": {"href": f"/v2/applications/{APPLICATION_ID}"}},
    }


@pytest.fixture
def account_runner(make_app):
    app = make_app(VONAGE_API_KEY=API_KEY, VONAGE_API_SECRET=API_SECRET)
    return app.test_cli_runner()


def test_send_sms_sends_through_the_service_and_prints_the_result(app, runner, vonage_api):
    vonage_api.post(
        MESSAGES_URL, json={"message_uuid": "bbbbbbbb-0000-4000-8000-000000000001"}, status=202
    )

    result = runner.invoke(
        args=["send-sms", "--to", "+14155550100", "--text", "Hi", "--client-ref", "c1"]
    )

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["message_uuid"] == "bbbbbbbb-0000-4000-8000-000000000001"
    assert (printed["status"], printed["client_ref"], printed["from"]) == (
        "submitted",
        "c1",
        VONAGE_NUMBER,
    )
    sent = json.loads(vonage_api.calls[0].request.body)
    assert sent["client_ref"] == printed["id"]
    assert count_rows(app, "messages") == 1


def test_send_sms_with_an_invalid_number_prints_the_problem_and_fails(app, runner, vonage_api):
    result = runner.invoke(args=["send-sms", "--to", "12", "--text", "Hi"])

    assert result.exit_code == 1
    problem = json.loads(result.stdout)
    assert problem["status"] == 422
    assert problem["errors"][0]["field"] == "to"
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 0


def test_send_sms_when_vonage_refuses_fails_with_the_reason(runner, vonage_api):
    vonage_api.post(MESSAGES_URL, json={"title": "Invalid params", "detail": "nope"}, status=422)

    result = runner.invoke(args=["send-sms", "--to", "+14155550100", "--text", "Hi"])

    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == 502


def signed_call(call) -> dict:
    token = call.request.headers["Authorization"].removeprefix("Bearer ")
    claims = verify(token, call.request.body, secrets=[SIGNATURE_SECRET], max_age=60)
    assert claims["iss"] == "Vonage"
    return json.loads(call.request.body)


def test_webhook_inbound_posts_a_signed_v1_inbound_message(runner):
    with responses.RequestsMock() as mock:
        mock.post(f"{DEPLOYMENT}/webhooks/inbound", json={"status": "ok", "duplicate": False})

        result = runner.invoke(
            args=[
                "webhook",
                "inbound",
                "--url",
                DEPLOYMENT + "/",
                "--from",
                "+14155550100",
                "--text",
                "Stop please",
            ]
        )

        payload = signed_call(mock.calls[0])
    assert result.exit_code == 0, result.output
    assert "-> 200" in result.output
    assert payload == {
        "channel": "sms",
        "message_uuid": payload["message_uuid"],
        "to": VONAGE_NUMBER,
        "from": "14155550100",
        "timestamp": payload["timestamp"],
        "text": "Stop please",
        "message_type": "text",
        "sms": {"num_messages": "1", "total_count": "1", "keyword": "STOP"},
        "usage": {"currency": "EUR", "price": "0.0057"},
        "origin": {"network_code": "310260"},
    }


def test_webhook_status_posts_a_signed_v1_status_with_an_error(runner):
    with responses.RequestsMock() as mock:
        mock.post(f"{DEPLOYMENT}/webhooks/status", json={"status": "ok", "duplicate": False})

        result = runner.invoke(
            args=[
                "webhook",
                "status",
                "--url",
                DEPLOYMENT,
                "--message-uuid",
                "cccccccc-0000-4000-8000-000000000001",
                "--status",
                "rejected",
                "--to",
                "14155550100",
                "--client-ref",
                "our-id",
                "--error-code",
                "1250",
            ]  # fmt: skip
        )

        payload = signed_call(mock.calls[0])
    assert result.exit_code == 0, result.output
    assert payload["status"] == "rejected"
    assert payload["from"] == VONAGE_NUMBER
    assert payload["client_ref"] == "our-id"
    assert payload["usage"] == {"currency": "EUR", "price": "0.0333"}
    assert payload["error"]["title"] == "1250"
    assert payload["timestamp"].endswith("Z")


def test_webhook_that_the_app_refuses_fails_and_shows_the_answer(runner):
    with responses.RequestsMock() as mock:
        mock.post(f"{DEPLOYMENT}/webhooks/inbound", json={"title": "Invalid signature"}, status=401)

        result = runner.invoke(
            args=["webhook", "inbound", "--url", DEPLOYMENT, "--from", "14155550100", "--text", "x"]
        )

    assert result.exit_code == 1
    assert "-> 401" in result.output


def test_webhook_needs_an_http_url(runner):
    result = runner.invoke(
        args=["webhook", "inbound", "--url", "ftp://x", "--from", "14155550100", "--text", "x"]
    )

    assert result.exit_code == 2
    assert "http(s) URL" in result.output


def test_webhook_needs_the_signature_secret(make_app):
    runner = make_app(VONAGE_SIGNATURE_SECRET="").test_cli_runner()

    result = runner.invoke(
        args=["webhook", "inbound", "--url", DEPLOYMENT, "--from", "14155550100", "--text", "x"]
    )

    assert result.exit_code == 2
    assert "VONAGE_SIGNATURE_SECRET" in result.output


@pytest.mark.parametrize("messages", [None, {"version": "v0.1", "webhooks": {}}])
def test_set_webhooks_puts_the_application_back_with_messages_webhooks(account_runner, messages):
    basic = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    updated = application(
        {
            "version": "v1",
            "webhooks": {
                "inbound_url": {"address": f"{DEPLOYMENT}/webhooks/inbound", "http_method": "POST"},
                "status_url": {"address": f"{DEPLOYMENT}/webhooks/status", "http_method": "POST"},
            },
        }
    )
    with responses.RequestsMock() as mock:
        mock.get(
            APPLICATION_URL,
            json=application(messages),
            match=[matchers.header_matcher({"Authorization": basic})],
        )
        mock.put(
            APPLICATION_URL, json=updated, match=[matchers.header_matcher({"Authorization": basic})]
        )

        result = account_runner.invoke(args=["set-webhooks", "--base-url", DEPLOYMENT + "/"])

        put_body = json.loads(mock.calls[1].request.body)
    assert result.exit_code == 0, result.output
    assert put_body == {
        "name": "sms-service",
        "capabilities": {
            "voice": {
                "webhooks": {
                    "answer_url": {"address": "https://example.com/answer", "http_method": "GET"},
                    "event_url": {"address": "https://example.com/event", "http_method": "POST"},
                }
            },
            "messages": {
                "webhooks": {
                    "inbound_url": {
                        "address": f"{DEPLOYMENT}/webhooks/inbound",
                        "http_method": "POST",
                    },
                    "status_url": {
                        "address": f"{DEPLOYMENT}/webhooks/status",
                        "http_method": "POST",
                    },
                },
                "version": "v1",
            },
        },
        "privacy": {"improve_ai": False},
        "keys": {"public_key": PUBLIC_KEY},
    }
    assert f"status_url:  {DEPLOYMENT}/webhooks/status" in result.output


def test_set_webhooks_names_the_missing_credentials(runner):
    with responses.RequestsMock():
        result = runner.invoke(args=["set-webhooks", "--base-url", DEPLOYMENT])

    assert result.exit_code == 2
    assert "VONAGE_API_KEY, VONAGE_API_SECRET" in result.output


def test_set_webhooks_reports_an_api_refusal_and_puts_nothing(account_runner):
    with responses.RequestsMock() as mock:
        mock.get(APPLICATION_URL, json={"title": "Unauthorized"}, status=401)

        result = account_runner.invoke(args=["set-webhooks", "--base-url", DEPLOYMENT])

        assert [call.request.method for call in mock.calls] == ["GET"]
    assert result.exit_code == 1
    assert "the Application API call failed" in result.output
