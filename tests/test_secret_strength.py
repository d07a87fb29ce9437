"""Production refuses guessable or published secrets and a key file others can read."""

import os
import re
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.secret_strength import PUBLISHED_EXAMPLE_VALUES

REPO_ROOT = Path(__file__).resolve().parents[1]
STRONG = "a-long-random-value-0123456789"

SECRET_SETTINGS = (
    "API_KEYS",
    "VONAGE_SIGNATURE_SECRET",
    "VONAGE_SIGNATURE_SECRET_PREVIOUS",
    "VONAGE_API_KEY",
    "VONAGE_API_SECRET",
    "METRICS_TOKEN",
)
_ASSIGNMENT = re.compile(rf"\b({'|'.join(SECRET_SETTINGS)})=([^\s'\"`)]+)")
_BEARER = re.compile(r"Bearer (?!\$)([^\s'\"`<>)]+)")  # not a shell variable ($KEY)


def production(tmp_path, **overrides) -> dict:
    key = tmp_path / "private.key"
    key.write_text("unused")
    key.chmod(0o600)
    values = {
        "APP_ENV": "production",
        "VONAGE_APPLICATION_ID": "11111111-2222-4333-8444-555555555555",
        "VONAGE_PRIVATE_KEY_PATH": str(key),
        "VONAGE_NUMBER": "+14155550199",
        "VONAGE_SIGNATURE_SECRET": STRONG + "-signature",
        "API_KEYS": STRONG + "-key",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sms.db'}",
    }
    values.update(overrides)
    return values


def published_examples() -> set[str]:
    """Every credential value README.md and .env.example show."""
    found = set()
    for name in ("README.md", ".env.example"):
        text = (REPO_ROOT / name).read_text()
        for _setting, value in _ASSIGNMENT.findall(text):
            found.update(part for part in value.split(",") if part)
        found.update(_BEARER.findall(text))
    return found


def test_strong_settings_start(tmp_path):
    assert load_settings(production(tmp_path), environ={}).is_production


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("API_KEYS", "a"),
        ("API_KEYS", f"{STRONG},short"),
        ("VONAGE_SIGNATURE_SECRET", "x"),
        ("VONAGE_SIGNATURE_SECRET_PREVIOUS", "fifteen-chars!!"),
        ("METRICS_TOKEN", "token"),
    ],
)
def test_short_secrets_are_refused_naming_the_setting(tmp_path, setting, value):
    with pytest.raises(ConfigError, match=f"{setting} must be at least 16"):
        load_settings(production(tmp_path, **{setting: value}), environ={})


def test_every_example_value_in_the_docs_is_listed_and_refused(tmp_path):
    examples = published_examples()
    assert "demo-key-change-me" in examples  # the extraction works at all
    assert examples <= PUBLISHED_EXAMPLE_VALUES, examples - PUBLISHED_EXAMPLE_VALUES
    for value in examples:
        for setting in ("API_KEYS", "VONAGE_SIGNATURE_SECRET", "VONAGE_API_SECRET"):
            with pytest.raises(ConfigError, match=setting):
                load_settings(production(tmp_path, **{setting: value}), environ={})


def test_a_key_file_others_can_read_is_refused(tmp_path):
    values = production(tmp_path)
    os.chmod(values["VONAGE_PRIVATE_KEY_PATH"], 0o644)
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY_PATH is readable"):
        load_settings(values, environ={})


def test_development_keeps_working_with_short_local_values():
    settings = load_settings({"API_KEYS": "k", "VONAGE_SIGNATURE_SECRET": "x"}, environ={})
    assert settings.api_keys == ("k",)


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SEND_SMS_RATE_LIMIT", "garbage"),
        ("SEND_SMS_RATE_LIMIT", "10/fortnight"),
        ("RATELIMIT_STORAGE_URI", "redis-is-here"),
        ("LOG_LEVEL", "LOUD"),
        ("PORT", "70000"),
        ("DATABASE_URL", "not a url"),
        ("VONAGE_API_HOST", "https://api.nexmo.com/v1"),
    ],
)
def test_unparseable_settings_refuse_to_start_naming_them(tmp_path, environment, setting, value):
    with pytest.raises(ConfigError, match=setting):
        load_settings(production(tmp_path, APP_ENV=environment, **{setting: value}), environ={})
