"""The start-up summary and the configuration-error block (app/startup.py).
tests/integration/test_startup.py runs them in real processes."""

from __future__ import annotations

import io
import json

import pytest

from app.config import ConfigError
from app.startup import announce, config_error_block, disabled, exit_with_config_error
from tests.support import API_KEY, SIGNATURE_SECRET, VONAGE_NUMBER


def announced(settings) -> str:
    stream = io.StringIO()
    announce(settings, urls=["http://127.0.0.1:3000"], instance_path="/srv/x", stream=stream)
    return stream.getvalue()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_summary_shows_no_secret_key_or_number(make_settings, private_key_pem, log_format):
    settings = make_settings(
        LOG_FORMAT=log_format,
        DATABASE_URL="postgresql+psycopg://sms:db-password-123@db.internal:5432/sms",
        VONAGE_API_SECRET="account-secret-456",
    )

    output = announced(settings)

    assert output.count("\n") == (7 if log_format == "text" else 1)
    for secret in (
        API_KEY,
        SIGNATURE_SECRET,
        "db-password-123",
        "account-secret-456",
        VONAGE_NUMBER,
        private_key_pem.splitlines()[1],
    ):
        assert secret not in output
    assert "postgresql+psycopg://sms:***@db.internal:5432/sms" in output


def test_the_json_summary_is_one_log_line_with_every_fact(make_settings):
    line = json.loads(announced(make_settings(LOG_FORMAT="json")))

    assert (line["logger"], line["message"], line["level"]) == ("app.startup", "starting", "INFO")
    assert line["urls"] == ["http://127.0.0.1:3000"]
    assert line["environment"] == "development"
    assert line["vonage_host"].startswith("api.nexmo.com (the real Vonage API")
    assert line["api_keys"] == 2
    assert line["disabled"] == []


def test_the_summary_says_what_is_off_and_why(make_settings):
    settings = make_settings(
        API_KEYS="", VONAGE_SIGNATURE_SECRET="", VONAGE_NUMBER="", LOG_FORMAT="text"
    )

    reasons = disabled(settings)
    output = announced(settings)

    assert len(reasons) == 3
    assert "webhooks refused (503): VONAGE_SIGNATURE_SECRET is not set" in reasons
    assert "sends and history refused (401): API_KEYS is not set" in reasons
    for reason in reasons:
        assert reason in output


def test_the_error_block_names_every_problem_and_exits_non_zero():
    error = ConfigError(["PORT must be a number, got 'x'", "missing required settings: API_KEYS"])
    stream = io.StringIO()

    with pytest.raises(SystemExit) as exit_:
        exit_with_config_error(error, stream)

    assert exit_.value.code != 0
    assert stream.getvalue() == config_error_block(error) + "\n"
    assert "  - PORT must be a number, got 'x'\n  - missing required settings: API_KEYS" in (
        stream.getvalue()
    )
