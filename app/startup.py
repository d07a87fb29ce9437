"""What a person sees when the service starts: a summary of how it is set up,
or one block naming every setting that stops it from starting.

`python -m app` and gunicorn's master call these; the summary never shows a
secret, a key or a full number, only whether they are set and what is off.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NoReturn

from sqlalchemy.engine import make_url

from app.config import ConfigError, Settings, load_settings

CONFIG_ERROR_EXIT_CODE = 1
REAL_VONAGE_HOSTS = ("api.nexmo.com", "api-eu.vonage.com", "api-ap.vonage.com", "api.vonage.com")


def config_error_block(error: ConfigError) -> str:
    lines = ["sms-service cannot start; fix these settings (environment or .env):"]
    lines += [f"  - {problem}" for problem in error.problems]
    lines.append("See .env.example for what each setting means.")
    return "\n".join(lines)


def exit_with_config_error(error: ConfigError, stream: IO[str] | None = None) -> NoReturn:
    print(config_error_block(error), file=stream or sys.stderr, flush=True)
    raise SystemExit(CONFIG_ERROR_EXIT_CODE)


def settings_or_exit() -> Settings:
    """The environment's settings, or the error block and a non-zero exit."""
    try:
        return load_settings()
    except ConfigError as error:
        exit_with_config_error(error)


def database_url(settings: Settings, instance_path: str) -> str:
    """The URL the app opens, with any password hidden."""
    from app.store.engine import default_sqlite_url

    url = make_url(settings.database_url or default_sqlite_url(instance_path))
    if url.get_backend_name() == "sqlite" and url.database and Path(url.database).is_absolute():
        # Relative to the working directory when under it: no machine paths to copy.
        with contextlib.suppress(ValueError):
            url = url.set(database=str(Path(url.database).relative_to(Path.cwd())))
    return url.render_as_string(hide_password=True)


def disabled(settings: Settings) -> list[str]:
    """What the service refuses to do with these settings, and why."""
    off = []
    if not settings.vonage_signature_secret:
        off.append("webhooks refused (503): VONAGE_SIGNATURE_SECRET is not set")
    if not settings.api_keys:
        off.append("sends and history refused (401): API_KEYS is not set")
    if not settings.vonage_configured:
        off.append(
            "sends refused (503): Vonage is not configured "
            "(VONAGE_APPLICATION_ID, a private key and VONAGE_NUMBER)"
        )
    return off


def vonage_host(settings: Settings) -> str:
    host = settings.vonage_api_host
    if host in REAL_VONAGE_HOSTS:
        return f"{host} (the real Vonage API: sends cost money)"
    if host.startswith(("127.", "localhost", "[::1]")):
        return f"{host} (a local simulator)"
    return host


def summary(settings: Settings, *, urls: list[str], instance_path: str) -> dict[str, Any]:
    return {
        "urls": urls,
        "environment": settings.app_env,
        "database": database_url(settings, instance_path),
        "vonage_host": vonage_host(settings),
        "api_keys": len(settings.api_keys),
        "disabled": disabled(settings),
    }


def summary_text(facts: dict[str, Any]) -> str:
    urls = facts["urls"]
    lines = [f"sms-service listening on {', '.join(urls)}"]
    if urls:
        lines.append(f"  API docs:     {urls[0]}/docs")
    lines += [
        f"  environment:  {facts['environment']}",
        f"  database:     {facts['database']}",
        f"  Vonage host:  {facts['vonage_host']}",
        f"  API keys:     {facts['api_keys']}",
    ]
    off = facts["disabled"] or ["nothing"]
    lines.append(f"  disabled:     {off[0]}")
    lines += [f"                {reason}" for reason in off[1:]]
    return "\n".join(lines)


def announce(
    settings: Settings, *, urls: list[str], instance_path: str, stream: IO[str] | None = None
) -> None:
    """Print the summary once: a block for a person, or one JSON log line."""
    facts = summary(settings, urls=urls, instance_path=instance_path)
    if settings.log_format == "text":
        text = summary_text(facts)
    else:
        # The shape of the service's JSON log lines; written directly, so that
        # gunicorn's master needs no logging set up (nor metrics imported) for it.
        text = json.dumps(
            {
                "time": datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z"),
                "level": "INFO",
                "logger": "app.startup",
                "message": "starting",
                **facts,
            }
        )
    print(text, file=stream or sys.stderr, flush=True)
