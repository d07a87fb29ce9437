"""Premium-rate, toll-fraud and non-SMS destinations, and the country lists."""

import pytest

from app.config import ConfigError
from app.destinations import refusal
from tests.support import accepted, auth_headers, count_rows


@pytest.mark.parametrize(
    "number",
    [
        "+19005550123",  # US 1-900 premium rate
        "+449098790000",  # UK 09 premium rate
        "+4909001234567",  # DE 0900, written with its trunk 0
        "+33891234567",  # FR 089 premium rate
        "+979123456789",  # international premium rate
        "+881612345678",  # satellite (GMSS)
        "+870773111632",  # Inmarsat
        "+8823421234",  # international networks
        "+883510012345",
        "+80812345678",  # international shared cost
        "+448431234567",  # UK 084 shared cost
        "+447640123456",  # UK 076 pager
        "+447012345678",  # UK 070 personal number
    ],
)
def test_toll_fraud_and_non_sms_destinations_are_refused_and_nothing_is_sent(
    app, send, vonage_api, number
):
    response = send({"to": number, "text": "Hi"})

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["type"].endswith("destination-not-allowed")
    assert response.json["detail"]
    assert count_rows(app, "messages") == 0
    assert len(vonage_api.calls) == 0


@pytest.mark.parametrize("number", ["14155550100", "447911123456", "33612345678", "4915112345678"])
def test_ordinary_numbers_pass(number):
    assert refusal(number) is None


def test_allowed_countries_refuse_every_other_country(make_app, vonage_api):
    accepted(vonage_api)
    app = make_app(SEND_SMS_ALLOWED_COUNTRIES="US,CA")
    client = app.test_client()

    refused = client.post(
        "/send-sms", json={"to": "+33612345678", "text": "Hi"}, headers=auth_headers()
    )
    allowed = client.post(
        "/send-sms", json={"to": "+14155550100", "text": "Hi"}, headers=auth_headers()
    )

    assert refused.status_code == 422
    assert refused.json["type"].endswith("destination-not-allowed")
    assert "FR" in refused.json["detail"]
    assert allowed.status_code == 202
    assert len(vonage_api.calls) == 1
    assert count_rows(app, "messages") == 1


def test_blocked_countries_are_refused_and_the_allow_list_wins(make_app, vonage_api):
    accepted(vonage_api)
    blocked = make_app(SEND_SMS_BLOCKED_COUNTRIES="fr").test_client()
    both = make_app(SEND_SMS_ALLOWED_COUNTRIES="FR", SEND_SMS_BLOCKED_COUNTRIES="FR").test_client()
    body = {"to": "+33612345678", "text": "Hi"}

    assert blocked.post("/send-sms", json=body, headers=auth_headers()).status_code == 422
    assert len(vonage_api.calls) == 0
    assert both.post("/send-sms", json=body, headers=auth_headers()).status_code == 202


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEND_SMS_ALLOWED_COUNTRIES", "USA"),
        ("SEND_SMS_BLOCKED_COUNTRIES", "US,XX"),
        ("SEND_SMS_ALLOWED_COUNTRIES", "1"),
    ],
)
def test_bad_country_lists_refuse_to_start_naming_the_setting(make_settings, name, value):
    with pytest.raises(ConfigError, match=name):
        make_settings(**{name: value})


def test_the_cli_send_refuses_the_same_destinations(app, runner, vonage_api):
    result = runner.invoke(args=["send-sms", "--to", "+19005550123", "--text", "Hi"])
    assert result.exit_code == 1
    assert "destination-not-allowed" in result.output
    assert len(vonage_api.calls) == 0


def test_refused_destinations_are_counted_apart(app, send, vonage_api):
    from prometheus_client import REGISTRY

    def counted():
        labels = {"outcome": "destination_refused"}
        return REGISTRY.get_sample_value("sms_sends_total", labels) or 0.0

    before = counted()
    assert send({"to": "+19005550123", "text": "Hi"}).status_code == 422
    assert counted() == before + 1
    assert len(vonage_api.calls) == 0
