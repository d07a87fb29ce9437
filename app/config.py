"""Settings read once from the environment into a typed object.

`create_app` keeps them in `app.extensions["settings"]`; code asks
`app.extensions.settings()` (or is handed the object), never `os.environ`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import find_dotenv, load_dotenv
from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.destinations import is_country_code
from app.secret_strength import weak_secret_problems
from app.sms import canonical_address

REQUIRED_IN_PRODUCTION = (
    "VONAGE_APPLICATION_ID",
    "VONAGE_PRIVATE_KEY",  # or VONAGE_PRIVATE_KEY_PATH
    "VONAGE_NUMBER",
    "VONAGE_SIGNATURE_SECRET",
    "API_KEYS",
    "DATABASE_URL",
)


class ConfigError(RuntimeError):
    """The environment cannot run the service; `problems` names every one of them."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    port: int = 3000
    vonage_application_id: str = ""
    vonage_private_key: str = ""
    vonage_private_key_path: str = ""
    vonage_number: str = ""
    vonage_signature_secret: str = ""
    vonage_signature_secret_previous: str = ""
    vonage_api_key: str = ""
    vonage_api_secret: str = ""
    vonage_api_host: str = "api.nexmo.com"
    vonage_ca_bundle: str = ""
    vonage_timeout_seconds: float = 10.0
    vonage_max_sends_per_second: int = 30
    sms_max_length: int = 1600
    send_sms_daily_limit: int = 10000
    send_sms_max_in_flight: int = 24
    database_url: str = ""
    api_keys: tuple[str, ...] = field(default_factory=tuple)
    send_sms_rate_limit: str = "10/second;1000/hour"
    ratelimit_storage_uri: str = "memory://"
    webhook_max_age_seconds: int = 90000
    log_level: str = "INFO"
    log_format: str = "json"
    trusted_proxies: int = 1
    send_sms_allowed_countries: tuple[str, ...] = field(default_factory=tuple)
    send_sms_blocked_countries: tuple[str, ...] = field(default_factory=tuple)
    message_retention_days: int = 0
    reply_routing_days: int = 30
    # None until read: true in development, false in production.
    event_allow_private_urls: bool | None = None
    event_retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    event_dispatcher_threads: int = 16
    metrics_token: str = ""

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def allow_private_event_urls(self) -> bool:
        if self.event_allow_private_urls is None:
            return not self.is_production
        return self.event_allow_private_urls

    @property
    def vonage_configured(self) -> bool:
        return bool(
            self.vonage_application_id
            and (self.vonage_private_key or self.vonage_private_key_path)
            and self.vonage_number
        )

    def missing_for_production(self) -> list[str]:
        missing = []
        for name in REQUIRED_IN_PRODUCTION:
            value = getattr(self, name.lower())
            if name == "VONAGE_PRIVATE_KEY":
                if not (self.vonage_private_key or self.vonage_private_key_path):
                    missing.append("VONAGE_PRIVATE_KEY or VONAGE_PRIVATE_KEY_PATH")
            elif not value:
                missing.append(name)
        return missing

    def read_private_key(self) -> str:
        """The PEM text: `VONAGE_PRIVATE_KEY` wins over the path."""
        if self.vonage_private_key:
            return self.vonage_private_key.replace("\\n", "\n")
        return Path(self.vonage_private_key_path).read_text()


_INT_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type in ("int", int)}
_FLOAT_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type in ("float", float)}
_NON_NEGATIVE = {
    "send_sms_daily_limit",
    "message_retention_days",
    "trusted_proxies",
}
_POSITIVE = {
    "port",
    "vonage_timeout_seconds",
    "vonage_max_sends_per_second",
    "sms_max_length",
    "webhook_max_age_seconds",
    "reply_routing_days",
    "event_dispatcher_threads",
    "send_sms_max_in_flight",
}
# Past these a value is a typo, and it would fail later, at a request or a sweep
# (a date or count out of range), instead of at start-up naming the variable.
_MAXIMUM = {
    "vonage_timeout_seconds": 300,
    "reply_routing_days": 36500,
    "message_retention_days": 36500,
    "send_sms_daily_limit": 10**9,
    "event_dispatcher_threads": 1024,
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
DEFAULT_GUNICORN_THREADS = 96


def default_max_in_flight(environ: Mapping[str, str]) -> int:
    """The worker's threads (gunicorn's GUNICORN_THREADS, 96 by default) less a
    quarter (at least 2) kept for webhooks and health: 72 of 96, 6 of 8. A send
    may wait seconds on Vonage; a webhook or a probe takes milliseconds."""
    try:
        threads = int(environ.get("GUNICORN_THREADS") or DEFAULT_GUNICORN_THREADS)
    except ValueError:
        threads = DEFAULT_GUNICORN_THREADS
    return max(1, threads - max(2, threads // 4))


_COUNTRY_LISTS = {"send_sms_allowed_countries", "send_sms_blocked_countries"}


def _countries(name: str, raw: Any, problems: list[str]) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    codes = tuple(str(code).strip().upper() for code in items if str(code).strip())
    unknown = [code for code in codes if not is_country_code(code)]
    if unknown:
        problems.append(
            f"{name.upper()} must list ISO 3166-1 alpha-2 country codes (US,GB), got "
            + ", ".join(repr(code) for code in unknown)
        )
    return codes


def _coerce(name: str, raw: Any, problems: list[str]) -> Any:
    if name in _COUNTRY_LISTS:
        return _countries(name, raw, problems)
    if name == "database_url" and isinstance(raw, str):
        return _with_installed_postgres_driver(raw.strip())
    if name == "api_keys":
        if isinstance(raw, str):
            return tuple(key.strip() for key in raw.split(",") if key.strip())
        return tuple(raw)
    if name == "event_allow_private_urls":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word not in _TRUE | _FALSE:
            problems.append(f"EVENT_ALLOW_PRIVATE_URLS must be true or false, got {raw!r}")
            return None
        return word in _TRUE
    if name == "event_retry_schedule":
        return _retry_schedule(raw, problems)
    if name in _INT_FIELDS or name in _FLOAT_FIELDS:
        kind = int if name in _INT_FIELDS else float
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            problems.append(f"{name.upper()} must be a number, got {raw!r}")
            return None
        if kind is float and not math.isfinite(value):
            problems.append(f"{name.upper()} must be a finite number, got {raw!r}")
            return None
        if name in _POSITIVE and value <= 0:
            problems.append(f"{name.upper()} must be greater than 0")
        if name in _NON_NEGATIVE and value < 0:
            problems.append(f"{name.upper()} must not be negative")
        if name in _MAXIMUM and value > _MAXIMUM[name]:
            problems.append(f"{name.upper()} must be at most {_MAXIMUM[name]}")
        return value
    if name == "vonage_number":
        # Sent as Vonage's `from`: digits, no `+`, whatever separators it was written with.
        return canonical_address(str(raw))
    return str(raw).strip() if isinstance(raw, str) else raw


def _retry_schedule(raw: Any, problems: list[str]) -> tuple[float, ...] | None:
    """Seconds to wait before each retry, e.g. `5,300,1800`: comma-separated, each >= 0."""
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    try:
        steps = tuple(float(part) for part in parts)
    except (TypeError, ValueError):
        steps = ()
    if not steps or any(not 0 <= step <= 86400 for step in steps):
        problems.append(
            f"EVENT_RETRY_SCHEDULE must be comma-separated seconds from 0 to 86400, got {raw!r}"
        )
        return None
    return steps


# Heroku and most hosts hand out postgres:// (or postgresql://, whose default
# driver, psycopg2, is not installed): both mean the psycopg driver this service ships.
_POSTGRES_SCHEMES = ("postgres://", "postgresql://")
_DATABASE_BACKENDS = ("sqlite", "postgresql")
# The rate-limit storages the service is built and tested with (redis-py is installed).
_RATELIMIT_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")


def _with_installed_postgres_driver(url: str) -> str:
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _database_url_problems(database_url: str, *, production: bool) -> list[str]:
    """A URL the app could not open (unknown backend, a driver that is not installed;
    in production, an SQLite file in a folder that does not exist) stops the start,
    rather than failing every request (500s, or 503s for the missing folder)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return ["DATABASE_URL is not a SQLAlchemy URL"]
    if url.get_backend_name() not in _DATABASE_BACKENDS:
        return [
            "DATABASE_URL must be sqlite:///path/to/sms.db or postgresql+psycopg://…, "
            f"got a {url.drivername} URL"
        ]
    try:
        url.get_dialect().import_dbapi()
    except Exception:  # NoSuchModuleError, ImportError: the driver is not installed
        return [f"DATABASE_URL names the driver {url.drivername!r}, which is not installed"]
    database = url.database or ""
    if production and url.get_backend_name() == "sqlite" and _in_memory(database, url.query):
        return [
            "DATABASE_URL is an in-memory SQLite database: each worker would have its own, "
            "never migrated and lost at every restart"
        ]
    if production and url.get_backend_name() == "sqlite":
        if not database.startswith("file:") and not Path(database).parent.is_dir():
            return [
                "DATABASE_URL is an SQLite file in a folder that does not exist: "
                f"{Path(database).parent}"
            ]
    return []


def _in_memory(database: str, query) -> bool:
    """`sqlite://`, `:memory:`, and the URI forms (`file::memory:`, `?mode=memory`)."""
    mode = query.get("mode")
    modes = mode if isinstance(mode, tuple) else (mode,)
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or (database.startswith("file:") and ("memory" in modes or "mode=memory" in database))
    )


def _without_password(uri: str) -> str:
    """A URI as an error may show it: `redis://:secret@host` would put a password in logs."""
    credentials, at, host = uri.rpartition("@")
    if not at:
        return uri
    return f"{credentials.partition(':')[0]}://***@{host}"


_API_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?")


def _unparseable(settings: Settings) -> list[str]:
    """Settings whose text another library parses later: parsed now, so a typo
    refuses to start instead of switching a limit off at the first request."""
    problems = []
    try:
        parse_many(settings.send_sms_rate_limit)
    except ValueError:
        problems.append(
            "SEND_SMS_RATE_LIMIT is not a rate limit string like 10/second;1000/hour, "
            f"got {settings.send_sms_rate_limit!r}"
        )
    scheme = settings.ratelimit_storage_uri.partition("://")[0]
    if "://" not in settings.ratelimit_storage_uri or scheme not in _RATELIMIT_SCHEMES:
        problems.append(
            "RATELIMIT_STORAGE_URI must be memory:// or redis://host:port/db, "
            f"got {_without_password(settings.ratelimit_storage_uri)!r}"
        )
    if settings.database_url:
        problems += _database_url_problems(settings.database_url, production=settings.is_production)
    if logging.getLevelName(settings.log_level.upper()) not in range(0, 60):
        problems.append(
            f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {settings.log_level!r}"
        )
    if not _API_HOST.fullmatch(settings.vonage_api_host):
        problems.append(
            "VONAGE_API_HOST must be a host name with an optional port, like api-eu.vonage.com "
            f"or 127.0.0.1:8443, got {settings.vonage_api_host!r}"
        )
    if not 0 < settings.port < 65536:
        problems.append("PORT must be from 1 to 65535")
    return problems


def dotenv_path() -> str:
    """The `.env` of the working directory (or the nearest folder above it), as the
    `flask` command finds it; else the one above the package (a checkout's own).

    python-dotenv's default search starts from the calling module's folder, so
    `python -m app` or gunicorn started in a deployment folder ignored its `.env`.
    """
    return find_dotenv(usecwd=True) or find_dotenv()


_SENDER_NUMBER = re.compile(r"[0-9]{3,15}")


def _malformed_vonage_ids(settings: Settings) -> list[str]:
    """Vonage's identifiers in their form: a production typo is named at start, not
    learnt from every send's refusal."""
    problems = []
    if settings.vonage_number and not _SENDER_NUMBER.fullmatch(settings.vonage_number):
        problems.append(
            "VONAGE_NUMBER must be the sender's phone number, like +14155550199, "
            f"got {settings.vonage_number!r}"
        )
    if settings.vonage_application_id:
        try:
            uuid.UUID(settings.vonage_application_id)
        except ValueError:
            problems.append("VONAGE_APPLICATION_ID must be the application's UUID")
    return problems + _shared_credentials(settings)


def _shared_credentials(settings: Settings) -> list[str]:
    """Credentials of different holders that are the same value: whoever holds one
    has the other (an API key that signs webhooks as Vonage, a scrape token that sends)."""
    roles = {
        "API_KEYS": set(settings.api_keys),
        "VONAGE_SIGNATURE_SECRET": {
            settings.vonage_signature_secret,
            settings.vonage_signature_secret_previous,
        },
        "METRICS_TOKEN": {settings.metrics_token},
        "VONAGE_API_SECRET": {settings.vonage_api_secret},
    }
    names = list(roles)
    return [
        f"{later} must not be the same value as {earlier}"
        for index, earlier in enumerate(names)
        for later in names[index + 1 :]
        if (roles[earlier] & roles[later]) - {""}
    ]


def _ca_bundle_problems(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """VONAGE_CA_BUNDLE, else the bundle the Vonage client takes from the environment
    (a file or a folder): a wrong path would fail every send, not the start."""
    if settings.vonage_ca_bundle:
        if not Path(settings.vonage_ca_bundle).is_file():
            return [f"VONAGE_CA_BUNDLE is not a file: {settings.vonage_ca_bundle}"]
        return []
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if environ.get(name):
            if not Path(environ[name]).exists():
                return [f"{name} does not exist: {environ[name]}"]
            return []
    return []


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from the environment (plus `.env`), then `overrides`.

    Overrides use the environment variable names (`{"API_KEYS": "k1"}`) so tests
    build an app with their own settings and never touch `os.environ`.
    """
    if environ is None:
        load_dotenv(dotenv_path(), override=False)
        environ = os.environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in dataclasses.fields(Settings):
        env_name = f.name.upper()
        raw = environ.get(env_name)
        if overrides is not None and env_name in overrides:
            raw = overrides[env_name]
        if raw is None or raw == "":
            continue
        values[f.name] = _coerce(f.name, raw, problems)
    values.setdefault("send_sms_max_in_flight", default_max_in_flight(environ))
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    if settings.app_env not in ("development", "production"):
        problems.append(f"APP_ENV must be development or production, got {settings.app_env!r}")
    if settings.sms_max_length > 3200:
        problems.append("SMS_MAX_LENGTH must be at most 3200, the Messages API's own limit")
    if settings.log_format not in ("json", "text"):
        problems.append(f"LOG_FORMAT must be json or text, got {settings.log_format!r}")
    problems += _unparseable(settings)
    if settings.is_production:
        problems += _ca_bundle_problems(settings, environ)
        missing = settings.missing_for_production()
        if missing:
            problems.append("missing required settings: " + ", ".join(missing))
        problems += _malformed_vonage_ids(settings)
        problems += weak_secret_problems(
            api_keys=settings.api_keys,
            signature_secrets={
                "VONAGE_SIGNATURE_SECRET": settings.vonage_signature_secret,
                "VONAGE_SIGNATURE_SECRET_PREVIOUS": settings.vonage_signature_secret_previous,
                "METRICS_TOKEN": settings.metrics_token,
            },
            other_secrets={
                "VONAGE_API_KEY": settings.vonage_api_key,
                "VONAGE_API_SECRET": settings.vonage_api_secret,
            },
            private_key_path=None
            if settings.vonage_private_key
            else settings.vonage_private_key_path,
        )
    if problems:
        raise ConfigError(problems)
    if "log_format" not in values:
        settings = dataclasses.replace(settings, log_format=default_log_format(settings))
    return settings


def default_log_format(settings: Settings) -> str:
    """Text for a person at a terminal in development; JSON lines everywhere else."""
    return "text" if not settings.is_production and sys.stdout.isatty() else "json"
