"""The Vonage simulator: its send checks, faults, controls, webhooks and TLS."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
import uuid

import jwt
import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from vonage import Auth

from app.simulator.__main__ import main
from app.simulator.server import SimConfig, create_simulator
from app.simulator.state import Faults, InvalidFaults, SimState
from app.simulator.tls import ensure_certificate
from app.simulator.vonage_api import public_key_pem
from app.simulator.webhooks import RetryPolicy, WebhookSender
from app.webhooks.signature import verify
from tests.support import SIGNATURE_SECRET

APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
WEBHOOK_BASE = "http://app.test"
STATUS_URL = f"{WEBHOOK_BASE}/webhooks/status"
INBOUND_URL = f"{WEBHOOK_BASE}/webhooks/inbound"
SMS = {
    "to": "14155550100",
    "from": "14155550199",
    "text": "Hello",
    "client_ref": "3f0c6c1e-0000-4000-8000-000000000001",
    "channel": "sms",
    "message_type": "text",
}


@pytest.fixture
def state():
    return SimState()


@pytest.fixture
def app_webhooks():
    """The app's webhook routes, answered by `responses`; records what the simulator sends."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(STATUS_URL, json={"status": "ok"})
        mock.post(INBOUND_URL, json={"status": "ok"})
        yield mock


@pytest.fixture
def simulator(private_key_pem, state, app_webhooks, caplog):
    """The simulator's test client; its background deliveries end before the mock does."""
    caplog.set_level(logging.WARNING, logger="app.simulator")
    config = SimConfig(
        application_id=APPLICATION_ID,
        public_key=public_key_pem(private_key_pem),
        signature_secret=SIGNATURE_SECRET,
        webhook_base=WEBHOOK_BASE,
        number="14155550199",
        delivery_delay=0,
        retry=RetryPolicy(attempts=2, backoff=0),
    )
    simulator_app = create_simulator(config, state)
    yield simulator_app.test_client()
    simulator_app.extensions["sim_sender"].close()


@pytest.fixture
def bearer(private_key_pem):
    """The Authorization header exactly as the Vonage SDK builds it."""
    auth = Auth(application_id=APPLICATION_ID, private_key=private_key_pem)
    return auth.create_jwt_auth_string().decode()


def wait_for_calls(mock, count: int) -> list:
    deadline = time.monotonic() + 10
    while len(mock.calls) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(mock.calls) == count
    return list(mock.calls)


def test_a_valid_send_is_accepted_with_a_uuid_and_recorded(simulator, state, bearer, app_webhooks):
    response = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    assert response.status_code == 202
    message_uuid = response.get_json()["message_uuid"]
    assert uuid.UUID(message_uuid).version == 4
    [entry] = state.messages
    assert entry["request"] == SMS
    assert (entry["response_status"], entry["message_uuid"]) == (202, message_uuid)


def test_status_webhooks_are_signed_like_vonage_and_shaped_as_v1(simulator, bearer, app_webhooks):
    response = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    submitted, delivered = wait_for_calls(app_webhooks, 2)
    for call in (submitted, delivered):
        token = call.request.headers["Authorization"].removeprefix("Bearer ")
        claims = verify(token, call.request.body, secrets=[SIGNATURE_SECRET], max_age=60)
        assert set(claims) == {"iat", "jti", "iss", "payload_hash", "api_key", "application_id"}
        assert claims["iss"] == "Vonage"
        assert claims["application_id"] == APPLICATION_ID
        assert claims["api_key"]
        assert claims["jti"]
    payload = json.loads(submitted.request.body)
    assert payload == {
        "message_uuid": response.get_json()["message_uuid"],
        "to": "14155550100",
        "from": "14155550199",
        "timestamp": payload["timestamp"],
        "status": "submitted",
        "channel": "sms",
        "client_ref": SMS["client_ref"],
        "usage": {"currency": "EUR", "price": "0.0333"},
        "sms": {"count_total": "1"},
        "destination": {"network_code": "310260"},
    }
    assert payload["timestamp"].endswith("Z")
    assert json.loads(delivered.request.body)["status"] == "delivered"


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [("14155550110", "rejected", "1250"), ("14155550111", "undeliverable", "1260")],
)
def test_test_numbers_fail_with_an_error_object(simulator, bearer, app_webhooks, to, status, code):
    simulator.post("/v1/messages", json={**SMS, "to": to}, headers={"Authorization": bearer})

    [call] = wait_for_calls(app_webhooks, 1)
    payload = json.loads(call.request.body)
    assert payload["status"] == status
    assert payload["error"]["title"] == code
    assert set(payload["error"]) == {"type", "title", "detail", "instance"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer not-a-jwt"],
)
def test_a_send_without_a_valid_bearer_jwt_is_401(simulator, state, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = simulator.post("/v1/messages", json=SMS, headers=headers)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["title"] == "Unauthorized"
    assert state.messages[0]["response_status"] == 401


def test_a_jwt_for_another_application_is_401(simulator, private_key_pem):
    token = Auth(application_id="someone-else", private_key=private_key_pem)

    response = simulator.post(
        "/v1/messages", json=SMS, headers={"Authorization": token.create_jwt_auth_string().decode()}
    )

    assert response.status_code == 401
    assert "application_id" in response.get_json()["detail"]


def test_a_jwt_signed_by_another_key_is_401(simulator):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = Auth(application_id=APPLICATION_ID, private_key=pem).create_jwt_auth_string().decode()

    response = simulator.post("/v1/messages", json=SMS, headers={"Authorization": token})

    assert response.status_code == 401


def test_an_hs256_jwt_is_401(simulator):
    claims = {"application_id": APPLICATION_ID, "iat": int(time.time()), "jti": "x"}
    token = jwt.encode(claims, "a-guessable-secret-that-is-long-enough-32", algorithm="HS256")

    response = simulator.post(
        "/v1/messages", json=SMS, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"channel": "mms"}, "channel"),
        ({"message_type": "image"}, "message_type"),
        ({"to": "+14155550100"}, "to"),
        ({"to": "123456"}, "to"),
        ({"to": "1234567890123456"}, "to"),
        ({"from": "+14155550199"}, "from"),
        ({"from": "A very long sender"}, "from"),
        ({"webhook_version": "v2"}, "webhook_version"),
        ({"text": ""}, "text"),
        ({"text": "x" * 3201}, "text"),
        ({"client_ref": "r" * 101}, "client_ref"),
    ],
)
def test_an_invalid_sms_is_422_naming_the_parameter(simulator, state, bearer, change, name):
    response = simulator.post(
        "/v1/messages", json={**SMS, **change}, headers={"Authorization": bearer}
    )

    assert response.status_code == 422
    body = response.get_json()
    assert body["title"] == "Invalid params"
    assert [item["name"] for item in body["invalid_parameters"]] == [name]
    assert state.messages[0]["message_uuid"] is None


def test_the_longest_valid_text_and_client_ref_are_accepted(simulator, bearer, app_webhooks):
    body = {**SMS, "text": "x" * 3200, "client_ref": "r" * 100}

    response = simulator.post("/v1/messages", json=body, headers={"Authorization": bearer})

    assert response.status_code == 202


def test_a_body_that_is_not_an_object_is_422(simulator, bearer):
    response = simulator.post("/v1/messages", json=["sms"], headers={"Authorization": bearer})

    assert response.status_code == 422
    assert response.get_json()["invalid_parameters"][0]["name"] == "body"


def test_a_status_fault_answers_the_next_sends_then_clears(simulator, bearer, app_webhooks):
    set_response = simulator.post(
        "/_sim/faults", json={"status": 503, "retry_after": 2, "times": 1}
    )
    assert set_response.status_code == 200

    failed = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})
    accepted = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "2"
    assert accepted.status_code == 202
    assert simulator.get("/_sim/faults").get_json() == Faults().to_dict()


def test_faults_persist_until_deleted_without_times(simulator, bearer):
    simulator.post("/_sim/faults", json={"status": 429})

    statuses = [
        simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer}).status_code
        for _ in range(3)
    ]
    simulator.delete("/_sim/faults")

    assert statuses == [429, 429, 429]
    assert simulator.get("/_sim/faults").get_json()["status"] is None


@pytest.mark.parametrize(
    "faults",
    [{"status": 200}, {"latency": 5}, {"times": 0}, {"hang_seconds": -1}, {"webhook_first": 1}, []],
)
def test_invalid_faults_are_400(simulator, faults):
    response = simulator.post("/_sim/faults", json=faults)

    assert response.status_code == 400


def test_fault_parsing_keeps_each_type():
    faults = Faults.parse({"latency_ms": 200, "hang_seconds": 1.5, "webhook_first": True})

    assert (faults.latency_ms, faults.hang_seconds, faults.webhook_first) == (200, 1.5, True)
    with pytest.raises(InvalidFaults):
        Faults.parse({"status": True})


def test_webhook_first_delivers_the_statuses_before_answering(simulator, bearer, app_webhooks):
    simulator.post("/_sim/faults", json={"webhook_first": True})

    response = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    assert response.status_code == 202
    assert [json.loads(call.request.body)["status"] for call in app_webhooks.calls] == [
        "submitted",
        "delivered",
    ]


def test_duplicate_webhooks_sends_each_body_twice(simulator, bearer, app_webhooks):
    simulator.post("/_sim/faults", json={"duplicate_webhooks": True, "webhook_first": True})

    simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    bodies = [call.request.body for call in app_webhooks.calls]
    assert len(bodies) == 4
    assert bodies[0] == bodies[1] and bodies[2] == bodies[3]


def test_a_hung_send_waits_until_released(simulator, state, bearer, app_webhooks):
    simulator.post("/_sim/faults", json={"hang_seconds": 0.01})

    response = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    assert response.status_code == 202
    assert simulator.post("/_sim/release").status_code == 200


def test_inbound_control_delivers_a_signed_v1_inbound_sms(simulator, app_webhooks):
    response = simulator.post("/_sim/inbound", json={"from": "+14155550100", "text": "stop now"})

    assert response.status_code == 200
    assert response.get_json()["response_status"] == 200
    [call] = app_webhooks.calls
    assert call.request.url == INBOUND_URL
    token = call.request.headers["Authorization"].removeprefix("Bearer ")
    verify(token, call.request.body, secrets=[SIGNATURE_SECRET], max_age=60)
    payload = json.loads(call.request.body)
    assert payload == {
        "channel": "sms",
        "message_uuid": response.get_json()["message_uuid"],
        "to": "14155550199",
        "from": "14155550100",
        "timestamp": payload["timestamp"],
        "text": "stop now",
        "message_type": "text",
        "sms": {"num_messages": "1", "total_count": "1", "keyword": "STOP"},
        "usage": {"currency": "EUR", "price": "0.0057"},
        "origin": {"network_code": "310260"},
    }


def test_inbound_control_needs_from_and_text(simulator):
    response = simulator.post("/_sim/inbound", json={"text": "hi"})

    assert response.status_code == 400
    assert "from is required" in response.get_json()["detail"]


def test_controls_list_sends_and_webhook_attempts(simulator, bearer, app_webhooks):
    simulator.post("/_sim/faults", json={"webhook_first": True})
    simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    messages = simulator.get("/_sim/messages").get_json()["messages"]
    webhooks = simulator.get("/_sim/webhooks").get_json()["webhooks"]

    assert [m["response_status"] for m in messages] == [202]
    assert [(w["kind"], w["status"], w["response_status"]) for w in webhooks] == [
        ("status", "submitted", 200),
        ("status", "delivered", 200),
    ]


def test_an_unknown_route_is_a_problem_not_html(simulator):
    response = simulator.get("/v2/nothing")

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_webhooks_are_retried_on_5xx_with_growing_pauses(state):
    sleeps: list[float] = []
    sender = WebhookSender(
        state,
        SIGNATURE_SECRET,
        RetryPolicy(attempts=4, backoff=1, backoff_max=3),
        sleep=sleeps.append,
    )
    with responses.RequestsMock() as mock:
        mock.post(STATUS_URL, status=503)
        mock.post(STATUS_URL, status=429)
        mock.post(STATUS_URL, status=500)
        mock.post(STATUS_URL, status=200)

        final = sender.deliver(STATUS_URL, {"message_uuid": "u1"}, kind="status")

    assert final == 200
    assert sleeps == [1, 2, 3]
    assert [w["response_status"] for w in state.webhooks] == [503, 429, 500, 200]


def test_webhooks_are_not_retried_after_a_4xx(state):
    sleeps: list[float] = []
    sender = WebhookSender(state, SIGNATURE_SECRET, RetryPolicy(attempts=5), sleep=sleeps.append)
    with responses.RequestsMock() as mock:
        mock.post(STATUS_URL, status=401)

        final = sender.deliver(STATUS_URL, {"message_uuid": "u1"}, kind="status")

    assert final == 401
    assert sleeps == []


def test_webhook_retries_stop_after_the_last_attempt(state):
    sleeps: list[float] = []
    sender = WebhookSender(state, SIGNATURE_SECRET, RetryPolicy(attempts=3), sleep=sleeps.append)
    with responses.RequestsMock() as mock:
        mock.post(STATUS_URL, status=503)

        final = sender.deliver(STATUS_URL, {"message_uuid": "u1"}, kind="status")

    assert final == 503
    assert len(state.webhooks) == 3


def test_certificate_covers_localhost_and_is_reused(tmp_path):
    cert_path, key_path = ensure_certificate(tmp_path / "certs")

    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert key_path.stat().st_mode & 0o077 == 0
    assert ensure_certificate(tmp_path / "certs") == (cert_path, key_path)
    assert cert_path.read_bytes() == ensure_certificate(tmp_path / "certs")[0].read_bytes()


# --- Fidelity to Vonage (issue 9, section 4) ---------------------------------------------------


@pytest.mark.parametrize("sender", ["Vonage", "MyShop 24", "0412345678", "447700900001"])
def test_alphanumeric_and_national_senders_are_accepted_as_vonage_does(
    simulator, bearer, app_webhooks, sender
):
    response = simulator.post(
        "/v1/messages", json={**SMS, "from": sender}, headers={"Authorization": bearer}
    )

    assert response.status_code == 202, response.get_json()


def test_a_429_carries_vonages_rate_limit_type_and_no_retry_after(simulator, bearer):
    simulator.post("/_sim/faults", json={"status": 429, "times": 1})

    response = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    assert response.status_code == 429
    assert response.get_json()["type"] == "https://developer.vonage.com/api-errors#rate-limit"
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize(
    ("status", "kind", "title"),
    [
        (401, "#unauthorized", "Unauthorized"),
        (402, "#low-balance", "Low balance"),
        (403, "#forbidden", "Forbidden"),
        (422, "/messages#1150", "Invalid params"),
    ],
)
def test_an_injected_refusal_has_vonages_shape_for_its_status(
    simulator, bearer, app_webhooks, status, kind, title
):
    simulator.post("/_sim/faults", json={"status": status, "times": 1})

    response = simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert (body["type"], body["title"]) == (
        "https://developer.vonage.com/api-errors" + kind,
        title,
    )
    assert set(body) >= {"type", "title", "detail", "instance"}
    assert len(app_webhooks.calls) == 0


def test_a_send_asking_for_v0_1_gets_v0_1_status_events(simulator, bearer, app_webhooks):
    body = {**SMS, "webhook_version": "v0.1"}
    simulator.post("/v1/messages", json=body, headers={"Authorization": bearer})

    submitted, _ = wait_for_calls(app_webhooks, 2)
    payload = json.loads(submitted.request.body)
    assert payload["to"] == {"type": "sms", "number": "14155550100"}
    assert payload["status"] == "submitted"


@pytest.mark.parametrize(
    ("text", "segments"),
    [("hi", "1"), ("x" * 160, "1"), ("x" * 161, "2"), ("é" * 70, "1"), ("😀" * 40, "2")],
)
def test_inbound_sms_counts_segments_as_a_carrier_would(simulator, app_webhooks, text, segments):
    simulator.post("/_sim/inbound", json={"from": "14155550100", "text": text})

    [call] = app_webhooks.calls
    sms = json.loads(call.request.body)["sms"]
    assert (sms["num_messages"], sms["total_count"]) == (segments, segments)


def test_inbound_control_emits_other_channels_with_their_media(simulator, app_webhooks):
    response = simulator.post(
        "/_sim/inbound",
        json={
            "from": "447700900001",
            "channel": "whatsapp",
            "message_type": "image",
            "media_url": "https://example.com/cat.jpg",
            "text": "a cat",
        },
    )

    assert response.get_json()["response_status"] == 200
    payload = json.loads(app_webhooks.calls[0].request.body)
    assert payload["channel"] == "whatsapp"
    assert payload["message_type"] == "image"
    assert payload["image"] == {"url": "https://example.com/cat.jpg", "caption": "a cat"}
    assert "text" not in payload and "sms" not in payload


def test_inbound_control_keeps_a_messenger_id_as_vonage_writes_it(simulator, app_webhooks):
    simulator.post(
        "/_sim/inbound",
        json={"from": "7654321098765432", "to": "1234567890", "channel": "messenger", "text": "hi"},
    )

    payload = json.loads(app_webhooks.calls[0].request.body)
    assert (payload["channel"], payload["from"], payload["to"]) == (
        "messenger",
        "7654321098765432",
        "1234567890",
    )


def test_inbound_control_emits_the_v0_1_shape(simulator, app_webhooks):
    simulator.post(
        "/_sim/inbound", json={"from": "14155550100", "text": "hi", "webhook_version": "v0.1"}
    )

    payload = json.loads(app_webhooks.calls[0].request.body)
    assert payload["from"] == {"type": "sms", "number": "14155550100"}
    assert payload["message"] == {"content": {"type": "text", "text": "hi"}}


@pytest.mark.parametrize(
    "change",
    [{"channel": "email"}, {"message_type": "template"}, {"webhook_version": "v2"}],
)
def test_inbound_control_refuses_what_vonage_never_sends(simulator, app_webhooks, change):
    response = simulator.post("/_sim/inbound", json={"from": "14155550100", "text": "hi", **change})

    assert response.status_code == 400
    assert len(app_webhooks.calls) == 0


# `python -m app.simulator fault|release|sent|inbound`: the running simulator's
# controls without curl. Each command's HTTPS call is carried by `responses` to
# the simulator app above, so a test sees the state the command changed.

SIM_URL = re.compile(r"https://127\.0\.0\.1:8443/_sim/.*")


@pytest.fixture
def controls(simulator, app_webhooks):
    """Route the commands' calls to the simulator's test client."""

    def forward(request):
        path = request.path_url
        body = json.loads(request.body) if request.body else None
        answer = simulator.open(path, method=request.method, json=body)
        return answer.status_code, {}, answer.get_data()

    for method in ("GET", "POST", "DELETE"):
        app_webhooks.add_callback(
            method, SIM_URL, callback=forward, content_type="application/json"
        )
    return app_webhooks


def test_fault_sets_the_next_sends_faults(controls, state, capsys):
    code = main(["fault", "--status", "503", "--retry-after", "2", "--times", "1"])

    assert code == 0
    assert state.faults() == Faults(status=503, retry_after=2, times=1)
    assert json.loads(capsys.readouterr().out)["status"] == 503


def test_fault_clear_removes_every_fault(controls, state):
    state.set_faults(Faults(latency_ms=200))

    assert main(["fault", "--clear"]) == 0
    assert state.faults() == Faults()


def test_fault_show_prints_the_faults_in_force(controls, state, capsys):
    state.set_faults(Faults(hang_seconds=3))

    assert main(["fault", "--show"]) == 0
    assert json.loads(capsys.readouterr().out)["hang_seconds"] == 3


def test_an_invalid_fault_fails_with_the_simulators_reason(controls, state, capsys):
    code = main(["fault", "--status", "200"])

    assert code == 1
    assert "status" in capsys.readouterr().out
    assert state.faults() == Faults()


def test_inbound_delivers_a_signed_inbound_sms_to_the_app(controls, capsys):
    code = main(["inbound", "--from", "14155550100", "--text", "STOP"])

    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["response_status"] == 200
    delivered = [c for c in controls.calls if c.request.url == f"{WEBHOOK_BASE}/webhooks/inbound"]
    assert json.loads(delivered[0].request.body)["text"] == "STOP"


def test_sent_lists_every_send_the_simulator_answered(controls, simulator, bearer, capsys):
    simulator.post("/v1/messages", json=SMS, headers={"Authorization": bearer})

    assert main(["sent"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert " 202 to=14155550100 message_uuid=" in line


def test_release_lets_held_sends_go(controls, state, capsys):
    assert main(["release"]) == 0
    assert json.loads(capsys.readouterr().out) == {"status": "released"}


def test_a_simulator_that_is_not_running_is_named_with_how_to_start_it(capsys):
    with pytest.MonkeyPatch.context() as patch:

        def refuse(*args, **kwargs):
            raise requests.ConnectionError("connection refused")

        patch.setattr(requests, "request", refuse)
        code = main(["fault", "--status", "503"])

    assert code == 2
    assert "python -m app.simulator" in capsys.readouterr().err


def test_every_option_shows_its_default_in_help(capsys):
    for command in ("fault", "inbound", "sent", "release"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "(default: 8443)" in capsys.readouterr().out


@pytest.mark.parametrize("body", [b'{"to": "14155550100",', b"", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_400_invalid_json_as_vonage_answers(
    simulator, state, bearer, app_webhooks, body
):
    response = simulator.post(
        "/v1/messages",
        data=body,
        headers={"Authorization": bearer, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.get_json()["type"] == "https://developer.vonage.com/api-errors#invalid-json"
    assert state.messages[0]["message_uuid"] is None
    assert len(app_webhooks.calls) == 0
