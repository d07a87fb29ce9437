import json
import subprocess
import sys

import pytest

from app import create_app
from app.config import ConfigError, load_settings
from tests.support import API_KEY, APPLICATION_ID, SIGNATURE_SECRET, VONAGE_NUMBER, clean_env


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


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db.example:5432/sms", "postgresql+psycopg://u:p@db.example:5432/sms"),
        ("postgresql://u:p@db.example/sms", "postgresql+psycopg://u:p@db.example/sms"),
        ("postgresql+psycopg://u@db.example/sms", "postgresql+psycopg://u@db.example/sms"),
    ],
)
def test_a_heroku_style_postgres_url_uses_the_installed_driver(url, expected):
    assert load_settings({"DATABASE_URL": url}, environ={}).database_url == expected


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://u@db.example/sms", "mysql"),
        ("postgresql+psycopg2://u@db.example/sms", "not installed"),
    ],
)
def test_a_database_url_the_app_cannot_open_is_refused_by_name(url, named):
    """Else every worker dies with a traceback (or every request is a 500)."""
    with pytest.raises(ConfigError) as error:
        load_settings({"DATABASE_URL": url}, environ={})

    assert "DATABASE_URL" in str(error.value)
    assert named in str(error.value)


def test_production_refuses_an_sqlite_file_in_a_folder_that_does_not_exist(tmp_path):
    """Development starts (every write is a 503 until the folder exists); production
    names the setting at start instead of serving 503s."""
    url = f"sqlite:///{tmp_path / 'gone' / 'sms.db'}"

    with pytest.raises(ConfigError, match="DATABASE_URL is an SQLite file in a folder"):
        load_settings(production_settings(tmp_path, DATABASE_URL=url), environ={})
    assert load_settings({"DATABASE_URL": url}, environ={}).database_url == url


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:sms?mode=memory&cache=shared&uri=true",
        "sqlite:///file::memory:?uri=true",
    ],
)
def test_production_refuses_an_in_memory_sqlite_database(tmp_path, url):
    """Each gunicorn worker would have its own empty database, never migrated by the
    release step and gone at every restart: every event "stored" there is lost."""
    with pytest.raises(ConfigError, match="DATABASE_URL is an in-memory SQLite database"):
        load_settings(production_settings(tmp_path, DATABASE_URL=url), environ={})
    assert load_settings({"DATABASE_URL": url}, environ={}).database_url == url


def test_an_sqlite_file_in_an_existing_folder_is_accepted(tmp_path):
    url = f"sqlite:///{tmp_path / 'sms.db'}"

    assert load_settings({"DATABASE_URL": url}, environ={}).database_url == url


@pytest.mark.parametrize("uri", ["memcached://127.0.0.1:11211", "mongodb://127.0.0.1:27017"])
def test_a_rate_limit_storage_the_service_does_not_ship_is_refused(uri):
    with pytest.raises(ConfigError, match="RATELIMIT_STORAGE_URI"):
        load_settings({"RATELIMIT_STORAGE_URI": uri}, environ={})


@pytest.mark.parametrize("uri", ["memory://", "redis://127.0.0.1:6379/0", "rediss://r.example:1/0"])
def test_memory_and_redis_storages_are_accepted(uri):
    assert load_settings({"RATELIMIT_STORAGE_URI": uri}, environ={}).ratelimit_storage_uri == uri


def production_settings(tmp_path, **overrides):
    from tests.test_secret_strength import production

    return production(tmp_path, **overrides)


def test_production_refuses_a_requests_ca_bundle_that_does_not_exist(tmp_path, private_key_pem):
    """The Vonage client trusts it on every send: a wrong path fails each send, not the start."""
    production = {
        "APP_ENV": "production",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sms.db'}",
        "API_KEYS": API_KEY,
        "VONAGE_APPLICATION_ID": APPLICATION_ID,
        "VONAGE_PRIVATE_KEY": private_key_pem,
        "VONAGE_NUMBER": "+" + VONAGE_NUMBER,
        "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
    }
    missing = str(tmp_path / "missing.pem")

    with pytest.raises(ConfigError, match="REQUESTS_CA_BUNDLE does not exist"):
        load_settings(production, environ={"REQUESTS_CA_BUNDLE": missing})
    with pytest.raises(ConfigError, match="CURL_CA_BUNDLE does not exist"):
        load_settings(production, environ={"CURL_CA_BUNDLE": missing})
    assert load_settings(production, environ={"REQUESTS_CA_BUNDLE": str(tmp_path)}).is_production
    assert (
        load_settings(
            {**production, "APP_ENV": "development"}, environ={"REQUESTS_CA_BUNDLE": missing}
        ).app_env
        == "development"
    )


def test_a_refused_rate_limit_storage_is_named_without_its_password():
    with pytest.raises(ConfigError) as error:
        load_settings(
            {"RATELIMIT_STORAGE_URI": "memcache://app:s3cret-Pa55@cache:11211"}, environ={}
        )

    assert "RATELIMIT_STORAGE_URI" in str(error.value)
    assert "s3cret-Pa55" not in str(error.value)
    assert "memcache://***@cache:11211" in str(error.value)


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
        # One of API_KEYS (production() sets it): whoever holds the key could sign webhooks.
        ("VONAGE_SIGNATURE_SECRET", "a-long-random-value-0123456789-key"),
        ("METRICS_TOKEN", "a-long-random-value-0123456789-key"),
        ("METRICS_TOKEN", "a-long-random-value-0123456789-signature"),
    ],
)
def test_production_refuses_malformed_vonage_settings_naming_them(tmp_path, name, value):
    from tests.test_secret_strength import production

    with pytest.raises(ConfigError, match=name):
        load_settings(production(tmp_path, **{name: value}), environ={})
