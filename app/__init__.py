"""The two-way SMS service: `create_app()` builds it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import click
from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

MAX_BODY_BYTES = 64 * 1024


class SmsApp(Flask):
    """Flask, but OPTIONS gets a bodyless answer instead of an empty HTML page."""

    def make_default_options_response(self) -> Response:
        """OPTIONS: 204 with `Allow` and no body, not Flask's empty 200 `text/html`."""
        response = super().make_default_options_response()
        response.status_code = 204  # and so no Content-Type (`process_response`)
        return response

    def process_response(self, response: Response) -> Response:
        """A 204 has no body, so it names no type (Flask's default is `text/html`)."""
        response = super().process_response(response)
        if response.status_code == 204:
            response.headers.pop("Content-Type", None)
        return response


def create_app(
    config: Mapping[str, Any] | Any = None, *, sleep: Callable[[float], None] = time.sleep
) -> Flask:
    """Build the app.

    `config` is a mapping of environment-variable names that override the
    environment, or a ready `Settings` (what the tests pass, so they never read
    `os.environ` or `.env`). A bad configuration raises `ConfigError`, except
    under the `flask` command, which prints the problems and exits non-zero.
    `sleep` is how the Vonage client's retries, the outbound throttle and
    `send-sms --wait` wait (tests record the waits instead).
    """
    from app.config import ConfigError

    try:
        return _build(config, sleep)
    except ConfigError as error:
        if click.get_current_context(silent=True) is None:
            raise
        from app.startup import exit_with_config_error

        exit_with_config_error(error)


def _build(config: Mapping[str, Any] | Any, sleep: Callable[[float], None]) -> Flask:
    from app import cli, docs, errors, observability, retention, sending
    from app.api import bp as api_bp
    from app.config import Settings, load_settings
    from app.events.routes import bp as events_bp
    from app.extensions import init_limiter
    from app.openapi import bp as openapi_bp
    from app.readiness import Readiness
    from app.store import engine as store_engine
    from app.vonage_client import build_client
    from app.webhooks import bp as webhooks_bp
    from app.webhooks.fast_path import WebhookFastPath

    settings = config if isinstance(config, Settings) else load_settings(config)
    app = SmsApp(__name__)
    # werkzeug would answer `/messages//a` with an HTML 308 redirect that never
    # reaches the problem+json error handlers; such a path is simply not found.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["settings"] = settings
    app.wsgi_app = docs.serve_assets(app.wsgi_app)
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    observability.init_app(app, settings)
    app.extensions["db"] = store_engine.open_database(settings.database_url, app.instance_path)
    app.extensions["vonage"] = build_client(settings, sleep=sleep)
    limiter = init_limiter(app, settings)
    retention.init_app(app, settings.message_retention_days)
    _init_sending(app, settings, limiter.storage, sleep)
    app.extensions["readiness"] = Readiness(
        app.extensions["db"],
        maintenance=lambda connection: sending.settle_abandoned_sends(connection, settings),
    )

    errors.register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(webhooks_bp, url_prefix="/webhooks")
    app.register_blueprint(events_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(docs.bp)
    cli.register(app)
    # Outermost: the webhooks' common case is answered before any other layer runs.
    app.wsgi_app = WebhookFastPath(
        app.wsgi_app,
        settings=settings,
        engine=app.extensions["db"],
        max_body=MAX_BODY_BYTES,
        on_request=getattr(app.extensions.get("retention"), "start", None),
    )
    return app


def _init_sending(app: Flask, settings, limit_storage, sleep: Callable[[float], None]) -> None:
    """The sender and its collaborators (the Vonage client is built already), each
    kept on the app for the CLI, readiness and the tests."""
    from app import errors, sending
    from app.store.deferred import DeferredWrites
    from app.throttle import InFlightCap, SendThrottle

    app.extensions["sleep"] = sleep
    app.extensions["throttle"] = SendThrottle(
        limit_storage, settings.vonage_max_sends_per_second, sleep=sleep
    )
    app.extensions["sends_in_flight"] = InFlightCap(settings.send_sms_max_in_flight)
    app.extensions["deferred_writes"] = DeferredWrites(app.extensions["db"])
    app.extensions["sender"] = sending.Sender(
        settings=settings,
        engine=app.extensions["db"],
        vonage=app.extensions["vonage"],
        throttle=app.extensions["throttle"],
        in_flight=app.extensions["sends_in_flight"],
        deferred_writes=app.extensions["deferred_writes"],
        describe=errors.problem_body,
    )
