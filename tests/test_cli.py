"""Operator commands: send-sms, webhook inbound|status, set-webhooks."""

from __future__ import annotations

import base64
import json

import click
import pytest
import responses
from responses import matchers

from app.store import migrate as migrations
from app.store.engine import build_engine
from app.webhooks.payloads import inbound_payload, status_payload
from app.webhooks.signature import verify
from tests.support import (
    APPLICATION_ID,
    MESSAGES_URL,
    SIGNATURE_SECRET,
    VONAGE_NUMBER,
    count_rows,
    free_port,
)

DEPLOYMENT = "https://x.ngrok.app"
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


# send-sms --wait, messages list|show, migrate, and --help defaults.

SENT_UUID = "bbbbbbbb-0000-4000-8000-00000000000a"


@pytest.fixture
def receipts(app, signed_webhook):
    """While `send-sms --wait` polls, deliver the given status webhooks to the app, one per poll."""

    def deliver(*statuses: str, error_code: int | None = None) -> list[float]:
        pending = list(statuses)
        polls: list[float] = []

        def next_receipt(seconds: float) -> None:
            polls.append(seconds)
            if pending:
                payload = status_payload(
                    message_uuid=SENT_UUID,
                    status=pending.pop(0),
                    to="14155550100",
                    sender=VONAGE_NUMBER,
                    error_code=error_code,
                )
                assert signed_webhook("/webhooks/status", payload).status_code == 200

        app.config["ON_SLEEP"] = next_receipt
        return polls

    return deliver


def test_send_sms_wait_follows_the_status_until_delivered(app, runner, vonage_api, receipts):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": SENT_UUID}, status=202)
    polls = receipts("submitted", "delivered")

    result = runner.invoke(args=["send-sms", "--to", "+14155550100", "--text", "Hi", "--wait"])

    assert result.exit_code == 0, result.output
    message = json.loads(result.stdout)
    assert (message["message_uuid"], message["status"]) == (SENT_UUID, "delivered")
    assert [event["status"] for event in message["events"]] == ["submitted", "delivered"]
    assert "status: delivered" in result.stderr
    assert len(polls) == 2


def test_send_sms_wait_fails_when_the_message_is_rejected(runner, vonage_api, receipts):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": SENT_UUID}, status=202)
    receipts("rejected", error_code=1250)

    result = runner.invoke(args=["send-sms", "--to", "+14155550100", "--text", "Hi", "--wait"])

    assert result.exit_code == 1
    message = json.loads(result.stdout)
    assert message["status"] == "rejected"
    assert message["error"]["title"] == "1250"


def test_send_sms_wait_gives_up_after_the_timeout(runner, vonage_api, receipts):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": SENT_UUID}, status=202)
    polls = receipts()

    result = runner.invoke(
        args=["send-sms", "--to", "+14155550100", "--text", "Hi", "--wait", "--timeout", "0"]
    )

    assert result.exit_code == 2
    assert json.loads(result.stdout)["status"] == "submitted"
    assert "still submitted after 0 s" in result.stderr
    assert polls == []


def test_messages_list_shows_the_newest_first_and_filters(app, runner, vonage_api, signed_webhook):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": SENT_UUID}, status=202)
    runner.invoke(args=["send-sms", "--to", "+14155550100", "--text", "First out"])
    inbound = inbound_payload(sender="14155550123", recipient=VONAGE_NUMBER, text="A reply")
    assert signed_webhook("/webhooks/inbound", inbound).status_code == 200

    everything = runner.invoke(args=["messages", "list"])
    inbound_only = runner.invoke(args=["messages", "list", "--direction", "inbound"])
    by_number = runner.invoke(args=["messages", "list", "--number", "+14155550100", "--json"])

    assert everything.exit_code == 0, everything.output
    newest, oldest = everything.stdout.splitlines()
    assert "<- 14155550123" in newest and "received" in newest and "A reply" in newest
    assert "-> 14155550100" in oldest and "submitted" in oldest and "First out" in oldest
    assert len(inbound_only.stdout.splitlines()) == 1
    (line,) = by_number.stdout.splitlines()
    assert json.loads(line)["message_uuid"] == SENT_UUID


def test_messages_list_refuses_a_bad_number(runner):
    result = runner.invoke(args=["messages", "list", "--number", "12"])

    assert result.exit_code == 2
    assert "--number" in result.output


def test_messages_show_prints_the_message_with_its_events(runner, vonage_api, signed_webhook):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": SENT_UUID}, status=202)
    sent = json.loads(
        runner.invoke(args=["send-sms", "--to", "+14155550100", "--text", "Hi"]).stdout
    )
    payload = status_payload(
        message_uuid=SENT_UUID, status="delivered", to="14155550100", sender=VONAGE_NUMBER
    )
    assert signed_webhook("/webhooks/status", payload).status_code == 200

    by_id = runner.invoke(args=["messages", "show", sent["id"]])
    by_uuid = runner.invoke(args=["messages", "show", SENT_UUID])

    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.stdout) == json.loads(by_uuid.stdout)
    shown = json.loads(by_id.stdout)
    assert shown["status"] == "delivered"
    assert [event["status"] for event in shown["events"]] == ["delivered"]


def test_messages_show_of_an_unknown_id_fails(runner):
    result = runner.invoke(args=["messages", "show", "nope"])

    assert result.exit_code == 1
    assert "no message" in result.output


def test_migrate_reports_the_revision_it_reached(make_app, tmp_path):
    runner = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}").test_cli_runner()

    to_base = runner.invoke(args=["migrate", "--revision", "base"])
    to_head = runner.invoke(args=["migrate"])
    again = runner.invoke(args=["migrate", "--revision", "base"])

    assert to_base.stdout == "database already at base (empty); nothing to do\n"
    head = migrations.head_revision(build_engine("sqlite://"))
    assert to_head.stdout == f"database upgraded from base (empty) to {head} (head)\n"
    assert again.stdout == f"database already at {head} (head); nothing to do\n"


def test_every_option_of_every_command_shows_its_default_in_help(app, runner):
    def commands(group, path):
        for name, command in group.commands.items():
            yield [*path, name], command
            if isinstance(command, click.Group):
                yield from commands(command, [*path, name])

    for path, command in commands(app.cli, []):
        help_text = " ".join(runner.invoke(args=[*path, "--help"]).output.split())
        for option in command.params:
            if isinstance(option, click.Option) and isinstance(option.default, str | int | float):
                assert "[default:" in help_text, (path, option.name)
                assert f"default: {option.default}" in help_text, (path, option.name)


@pytest.mark.parametrize(
    "args", [["migrate"], ["messages", "list"], ["erase-number", "+14155550100"]]
)
def test_a_database_that_does_not_answer_is_one_line_naming_it_not_a_traceback(make_app, args):
    """The release phase (`migrate`) and the operator commands, PostgreSQL down."""
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/sms"
    runner = make_app(DATABASE_URL=nowhere).test_cli_runner()

    result = runner.invoke(args=args)

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "database error (DATABASE_URL): OperationalError" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_dispatch_refuses_a_thread_count_below_one_before_starting(runner, threads):
    """`--threads -1` reached ThreadPoolExecutor: a ValueError traceback; 0 silently
    meant the default."""
    result = runner.invoke(args=["dispatch", "--threads", threads])

    assert result.exit_code == 2
    assert "--threads" in result.output
    assert "dispatcher started" not in result.output
