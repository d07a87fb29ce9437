import json
import subprocess
import sys

import pytest

from app import create_app
from app.config import ConfigError, load_settings
from tests.support import clean_env


def test_defaults_for_a_local_run():
    settings = load_settings({}, environ={})
    assert settings.app_env == "development"
    assert settings.port == 3000
    assert settings.vonage_api_host == "api.nexmo.com"
    assert settings.send_sms_rate_limit == "10/second;1000/hour"
    assert settings.ratelimit_storage_uri == "memory://"
    assert settings.api_keys == ()


def test_production_names_every_missing_setting_at_once():
    with pytest.raises(ConfigError) as error:
        load_settings({"APP_ENV": "production"}, environ={})
    message = str(error.value)
    for name in (
        "VONAGE_APPLICATION_ID",
        "VONAGE_PRIVATE_KEY or VONAGE_PRIVATE_KEY_PATH",
        "VONAGE_NUMBER",
        "VONAGE_SIGNATURE_SECRET",
        "API_KEYS",
        "DATABASE_URL",
    ):
        assert name in message


def test_production_refuses_to_start_the_app(tmp_path):
    with pytest.raises(ConfigError):
        create_app({"APP_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})


def test_production_with_an_unreadable_key_refuses_to_start(make_settings, tmp_path):
    settings = make_settings(
        APP_ENV="production",
        VONAGE_PRIVATE_KEY="",
        VONAGE_PRIVATE_KEY_PATH=str(tmp_path / "missing.key"),
    )
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY_PATH"):
        create_app(settings)


def test_a_key_that_is_not_pem_refuses_to_start(make_settings):
    with pytest.raises(ConfigError, match="private key"):
        create_app(
            make_settings(
                VONAGE_PRIVATE_KEY="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"
            )
        )


def test_sms_max_length_cannot_exceed_the_api_limit():
    with pytest.raises(ConfigError, match="3200"):
        load_settings({"SMS_MAX_LENGTH": "3201"}, environ={})


def test_bad_numbers_are_reported():
    with pytest.raises(ConfigError, match="VONAGE_TIMEOUT_SECONDS"):
        load_settings({"VONAGE_TIMEOUT_SECONDS": "soon"}, environ={})
    with pytest.raises(ConfigError, match="SMS_MAX_LENGTH"):
        load_settings({"SMS_MAX_LENGTH": "0"}, environ={})


def test_api_keys_are_split_and_trimmed():
    assert load_settings({"API_KEYS": " a , b,,c "}, environ={}).api_keys == ("a", "b", "c")


def test_private_key_text_wins_over_the_path(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("from file")
    settings = load_settings(
        {"VONAGE_PRIVATE_KEY": "from env", "VONAGE_PRIVATE_KEY_PATH": str(path)}, environ={}
    )
    assert settings.read_private_key() == "from env"


def test_environment_is_read_when_no_mapping_is_given():
    settings = load_settings(None, environ={"API_KEYS": "k", "PORT": "8080"})
    assert settings.api_keys == ("k",)
    assert settings.port == 8080


def test_event_settings_defaults():
    development = load_settings({}, environ={})
    assert development.reply_routing_days == 30
    assert development.allow_private_event_urls is True
    assert development.event_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    strict = load_settings(
        {"EVENT_ALLOW_PRIVATE_URLS": "false", "EVENT_RETRY_SCHEDULE": "1, 2"}, environ={}
    )
    assert strict.allow_private_event_urls is False
    assert strict.event_retry_schedule == (1.0, 2.0)


def test_private_event_urls_are_refused_by_default_in_production(make_settings):
    assert make_settings(APP_ENV="production").allow_private_event_urls is False
    assert make_settings(
        APP_ENV="production", EVENT_ALLOW_PRIVATE_URLS="true"
    ).allow_private_event_urls


@pytest.mark.parametrize(
    "name, value",
    [
        ("REPLY_ROUTING_DAYS", "0"),
        ("REPLY_ROUTING_DAYS", "soon"),
        ("EVENT_ALLOW_PRIVATE_URLS", "maybe"),
        ("EVENT_RETRY_SCHEDULE", "5,never"),
        ("EVENT_RETRY_SCHEDULE", "-1"),
        ("EVENT_DISPATCHER_THREADS", "0"),
    ],
)
def test_bad_event_settings_are_refused_by_name(name, value):
    with pytest.raises(ConfigError) as error:
        load_settings({name: value}, environ={})
    assert name in str(error.value)


@pytest.mark.parametrize(
    ("app_env", "terminal", "expected"),
    [("development", True, "text"), ("development", False, "json"), ("production", True, "json")],
)
def test_log_format_defaults_to_text_only_for_a_person_in_development(
    monkeypatch, make_settings, app_env, terminal, expected
):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)

    assert make_settings(APP_ENV=app_env).log_format == expected


def test_a_log_format_that_is_set_wins_over_the_default(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)

    assert load_settings({"LOG_FORMAT": "json"}, environ={}).log_format == "json"


def test_config_error_lists_each_problem():
    with pytest.raises(ConfigError) as error:
        load_settings({"PORT": "x", "LOG_FORMAT": "xml", "SMS_MAX_LENGTH": "9999"}, environ={})

    assert len(error.value.problems) == 3
    assert str(error.value) == "; ".join(error.value.problems)


def test_production_refuses_a_ca_bundle_that_is_not_a_file(make_settings, tmp_path):
    with pytest.raises(ConfigError, match="VONAGE_CA_BUNDLE"):
        make_settings(APP_ENV="production", VONAGE_CA_BUNDLE=str(tmp_path / "missing.pem"))


def test_development_accepts_a_ca_bundle_the_simulator_has_not_written_yet(make_settings):
    settings = make_settings(VONAGE_CA_BUNDLE="instance/simulator/cert.pem")

    assert settings.vonage_ca_bundle == "instance/simulator/cert.pem"


def test_dotenv_is_read_from_the_working_directory(tmp_path):
    """As `python -m app` or gunicorn started in a deployment folder reads it."""
    (tmp_path / ".env").write_text("API_KEYS=from-dotenv-key-0123456789\n")
    script = tmp_path / "elsewhere" / "show_keys.py"
    script.parent.mkdir()
    script.write_text(
        "from app.config import load_settings\nprint(','.join(load_settings().api_keys))\n"
    )
    env = clean_env()
    del env["API_KEYS"]

    shown = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )

    assert shown.stdout.strip() == "from-dotenv-key-0123456789", shown.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VONAGE_TIMEOUT_SECONDS", "nan"),
        ("VONAGE_TIMEOUT_SECONDS", "inf"),
        ("VONAGE_TIMEOUT_SECONDS", "1e12"),
        ("REPLY_ROUTING_DAYS", "9999999999"),
        ("MESSAGE_RETENTION_DAYS", "9999999999"),
        ("SEND_SMS_DAILY_LIMIT", "99999999999999999999999"),
        ("EVENT_DISPATCHER_THREADS", "1000000"),
    ],
)
def test_numbers_that_would_fail_at_the_first_request_refuse_to_start(make_settings, name, value):
    """Each of these once started, then crashed the factory or answered every
    webhook or send 500 (a date or a count out of range)."""
    with pytest.raises(ConfigError, match=name):
        create_app(make_settings(**{name: value}))


def test_the_sender_number_is_sent_in_the_form_vonage_takes(make_app, vonage_api):
    from tests.support import accepted, auth_headers

    app = make_app(VONAGE_NUMBER="+1 (415) 555-0199")
    accepted(vonage_api)

    response = app.test_client().post(
        "/send-sms", json={"to": "+14155550100", "text": "Hi"}, headers=auth_headers()
    )

    assert response.status_code == 202
    assert response.json["from"] == "14155550199"
    [call] = vonage_api.calls
    assert json.loads(call.request.body)["from"] == "14155550199"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VONAGE_NUMBER", "hello"),
        ("VONAGE_APPLICATION_ID", "my-app"),
        ("VONAGE_SIGNATURE_SECRET", "a-long-random-value-0123456789-key"),
    ],
)
def test_production_refuses_malformed_vonage_settings_naming_them(tmp_path, name, value):
    from tests.test_secret_strength import production

    with pytest.raises(ConfigError, match=name):
        load_settings(production(tmp_path, **{name: value}), environ={})
