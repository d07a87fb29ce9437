"""Extensions created unbound at import and bound to an app in `create_app`."""

from __future__ import annotations

from contextlib import AbstractContextManager

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import Connection, Engine

from app.config import Settings
from app.store.engine import write_transaction

limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


def settings() -> Settings:
    return current_app.extensions["settings"]


def engine() -> Engine:
    return current_app.extensions["db"]


def writing() -> AbstractContextManager[Connection]:
    """A connection in a write transaction (`with writing() as connection:` commits)."""
    return write_transaction(engine())


def reading() -> Connection:
    return engine().connect().execution_options(readonly=True)


def vonage():
    """The app's VonageClient, or None when Vonage is not configured."""
    return current_app.extensions["vonage"]
