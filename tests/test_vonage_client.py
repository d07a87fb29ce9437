"""The thin client: key handling and the retry rule, through `responses`."""

import json
import time
from itertools import pairwise

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.vonage_client import (
    VonageClient,
    VonageRejected,
    VonageTimeout,
    VonageUnavailable,
    load_private_key,
    pkcs8_pem,
)

URL = "https://api-eu.vonage.com/v1/messages"


@pytest.fixture
def client(private_key_pem):
    sleeps = []
    vonage = VonageClient(
        application_id="app-id",
        private_key=private_key_pem,
        api_host="api-eu.vonage.com",
        timeout=2,
        sleep=sleeps.append,
    )
    vonage.sleeps = sleeps
    return vonage


def send(client, deadline_in=5.0):
    return client.send_sms(
        to="14155550100",
        sender="14155550199",
        text="Hi",
        client_ref="ref-1",
        deadline=time.monotonic() + deadline_in,
    )


def test_pkcs1_keys_are_accepted_as_pkcs8():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    assert pkcs8_pem(load_private_key(pkcs1)).startswith("-----BEGIN PRIVATE KEY-----")


@responses.activate
def test_uses_the_configured_host_and_a_fresh_rs256_jwt(client):
    import jwt

    responses.post(URL, json={"message_uuid": "u-1"}, status=202)
    assert send(client).message_uuid == "u-1"
    token = responses.calls[0].request.headers["Authorization"].split()[1]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "RS256"
    assert claims["application_id"] == "app-id"
    assert json.loads(responses.calls[0].request.body)["client_ref"] == "ref-1"


@responses.activate
def test_backoff_grows_and_stays_bounded(client):
    responses.post(URL, status=503, json={"title": "Service Unavailable"})
    with pytest.raises(VonageUnavailable):
        send(client, deadline_in=60)
    assert len(responses.calls) == 5
    assert all(0.25 <= pause <= 4.25 for pause in client.sleeps)


@responses.activate
def test_429_without_retry_after_backs_off_exponentially(client):
    """Vonage's own 429 body has no Retry-After: five tries in 0.4 s would all be refused."""
    responses.post(
        URL, status=429, json={"type": "https://developer.vonage.com/api-errors#rate-limit"}
    )
    with pytest.raises(VonageUnavailable):
        send(client, deadline_in=60)
    assert len(responses.calls) == 5
    assert client.sleeps[0] >= 0.25
    assert all(later >= earlier for earlier, later in pairwise(client.sleeps))
    assert sum(client.sleeps) >= 0.25 + 0.5 + 1 + 2


@responses.activate
def test_deadline_stops_retries(client):
    responses.post(URL, status=503, json={"title": "Service Unavailable"})
    with pytest.raises(VonageUnavailable):
        send(client, deadline_in=0)
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_is_a_rejection_never_retried(client, status):
    responses.post(URL, status=status, json={"title": "Nope", "detail": "because"})
    with pytest.raises(VonageRejected) as error:
        send(client)
    assert error.value.detail == "Nope: because (Vonage host: api-eu.vonage.com)"
    assert len(responses.calls) == 1


@responses.activate
def test_garbage_answers_map_cleanly(client):
    responses.post(URL, status=502, body="<html>bad gateway</html>")
    with pytest.raises(Exception) as error:
        send(client)
    assert error.value.maybe_sent is True
    assert len(responses.calls) == 1


@responses.activate
def test_read_timeout_is_maybe_sent(client):
    responses.post(URL, body=requests.ReadTimeout())
    with pytest.raises(VonageTimeout) as error:
        send(client)
    assert error.value.maybe_sent is True


@responses.activate
@pytest.mark.parametrize("body", ["<html>ok</html>", '{"uuid": "x"}', '{"message_uuid": ""}'])
def test_2xx_without_a_message_uuid_is_maybe_sent_never_retried(client, body):
    responses.post(URL, status=202, body=body, content_type="application/json")
    with pytest.raises(Exception) as error:
        send(client)
    assert error.value.maybe_sent is True
    assert len(responses.calls) == 1


@responses.activate
def test_a_ca_bundle_setting_is_what_the_host_is_checked_against(private_key_pem, tmp_path):
    """VONAGE_CA_BUNDLE wins over REQUESTS_CA_BUNDLE, which many systems set."""
    bundle = tmp_path / "simulator-cert.pem"
    responses.post(URL, json={"message_uuid": "uuid-1"}, status=202)
    vonage = VonageClient(
        application_id="app-id",
        private_key=private_key_pem,
        api_host="api-eu.vonage.com",
        timeout=2,
        ca_bundle=str(bundle),
    )

    send(vonage)

    assert responses.calls[0].request.req_kwargs["verify"] == str(bundle)


@responses.activate
@pytest.mark.parametrize(
    ("no_proxy", "expected"), [("", "http://proxy.example:3128"), ("api-eu.vonage.com", None)]
)
def test_the_environment_is_read_once_as_requests_would_read_it(
    private_key_pem, tmp_path, monkeypatch, no_proxy, expected
):
    """REQUESTS_CA_BUNDLE and the proxy variables are taken when the client is built,
    not looked up again (with ~/.netrc) on every send."""
    bundle = tmp_path / "system-bundle.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    responses.post(URL, json={"message_uuid": "uuid-1"}, status=202)
    vonage = VonageClient(
        application_id="app-id",
        private_key=private_key_pem,
        api_host="api-eu.vonage.com",
        timeout=2,
    )
    monkeypatch.setattr(
        "requests.utils.get_environ_proxies", lambda *_: pytest.fail("environment read again")
    )

    send(vonage)

    sent = responses.calls[0].request.req_kwargs
    assert sent["verify"] == str(bundle)
    assert sent["proxies"].get("https") == expected


def test_an_unreadable_ca_bundle_is_unavailable_naming_it(private_key_pem, tmp_path):
    missing = tmp_path / "missing.pem"
    vonage = VonageClient(
        application_id="app-id",
        private_key=private_key_pem,
        api_host="127.0.0.1:9",
        timeout=2,
        ca_bundle=str(missing),
    )

    with pytest.raises(VonageUnavailable) as error:
        send(vonage)

    assert str(missing) in error.value.detail
    assert "127.0.0.1:9" in error.value.detail
