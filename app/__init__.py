"""The two-way SMS service: `create_app()` builds it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

MAX_BODY_BYTES = 64 * 1024


def create_app(config: Mapping[str, Any] | Any = None) -> Flask:
    """Build the app.

    `config` is a mapping of environment-variable names that override the
    environment, or a ready `Settings` (what the tests pass, so they never read
    `os.environ` or `.env`).
    """
    from app import cli, errors, observability, sending
    from app.api import bp as api_bp
    from app.config import Settings, load_settings
    from app.events.routes import bp as events_bp
    from app.extensions import init_limiter
    from app.openapi import bp as openapi_bp
    from app.readiness import Readiness
    from app.store import engine as store_engine
    from app.store.deferred import DeferredWrites
    from app.throttle import InFlightCap, SendThrottle
    from app.vonage_client import build_client
    from app.webhooks import bp as webhooks_bp

    settings = config if isinstance(config, Settings) else load_settings(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["settings"] = settings
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    observability.init_app(app, settings)
    app.extensions["db"] = store_engine.open_database(settings.database_url, app.instance_path)
    app.extensions["vonage"] = build_client(settings)
    limiter = init_limiter(app, settings)
    app.extensions["throttle"] = SendThrottle(limiter.storage, settings.vonage_max_sends_per_second)
    app.extensions["sends_in_flight"] = InFlightCap(settings.send_sms_max_in_flight)
    app.extensions["deferred_writes"] = DeferredWrites(app.extensions["db"])
    app.extensions["readiness"] = Readiness(
        app.extensions["db"],
        maintenance=lambda connection: sending.settle_abandoned_sends(connection, settings),
    )

    errors.register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(webhooks_bp, url_prefix="/webhooks")
    app.register_blueprint(events_bp)
    app.register_blueprint(openapi_bp)
    cli.register(app)
    return app
