"""Extensions created unbound at import and bound to an app in `create_app`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

from flask import Flask, Response, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Connection, Engine

from app.config import Settings
from app.limit_storage import storage_uri
from app.store.engine import grouped_write, write_transaction

limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

REDIS_TIMEOUT_SECONDS = 0.5

log = logging.getLogger(__name__)


def init_limiter(app: Flask, settings: Settings) -> Limiter:
    """Bind the limiter: Redis calls time out well within a send's budget (a lost
    host, not only a refused connection, fails fast), and the rate-limit headers
    written after the view never replace the view's answer when storage fails."""
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri(settings.ratelimit_storage_uri)
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    if settings.ratelimit_storage_uri.startswith(("redis", "rediss")):
        timeout = min(REDIS_TIMEOUT_SECONDS, settings.vonage_timeout_seconds / 4)
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            "retry": Retry(NoBackoff(), 1),
        }
    limiter.init_app(app)
    hooks = app.after_request_funcs.setdefault(None, [])
    for index, hook in enumerate(hooks):
        if isinstance(hook, partial) and hook.args == (limiter,):
            hooks[index] = partial(_headers_never_fail, hook)
    return limiter


def _headers_never_fail(inject_headers, response: Response) -> Response:
    """flask-limiter reads its storage again to write X-RateLimit-*: if that fails
    (Redis just died), the answer goes out without them, never as a 500.

    It also writes `Retry-After` on every response, replacing the answer's own:
    the answer's (a problem's, written by `app.errors`) stands, and the
    limiter's is kept only on its 429.
    """
    own_retry_after = response.headers.get("Retry-After")
    try:
        response = inject_headers(response)
    except Exception as error:
        log.warning("rate-limit headers left out: storage failed (%s)", type(error).__name__)
    if own_retry_after is not None:
        response.headers["Retry-After"] = own_retry_after
    elif response.status_code != 429:
        response.headers.pop("Retry-After", None)
    return response


def settings() -> Settings:
    return current_app.extensions["settings"]


def engine() -> Engine:
    return current_app.extensions["db"]


def writing(timeout: float | None = None) -> AbstractContextManager[Connection]:
    """A connection in a write transaction (`with writing() as connection:` commits);
    `timeout` bounds the wait for the write lock."""
    return write_transaction(engine(), timeout)


def write_grouped(work: Callable[[Connection], Any], timeout: float | None = None) -> Any:
    """`work(connection)` committed durably, in one commit with concurrent writes
    of this worker (see `app.store.engine.grouped_write`); `timeout` bounds the
    wait for the write lock."""
    return grouped_write(engine(), work, timeout)


def reading() -> Connection:
    return engine().connect().execution_options(readonly=True)


def vonage():
    """The app's VonageClient, or None when Vonage is not configured."""
    return current_app.extensions["vonage"]
