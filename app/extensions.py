"""Extensions created unbound at import and bound to an app in `create_app`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import Connection, Engine

from app.config import Settings
from app.store.engine import grouped_write, write_transaction

limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


def settings() -> Settings:
    return current_app.extensions["settings"]


def engine() -> Engine:
    return current_app.extensions["db"]


def writing() -> AbstractContextManager[Connection]:
    """A connection in a write transaction (`with writing() as connection:` commits)."""
    return write_transaction(engine())


def write_grouped(work: Callable[[Connection], Any]) -> Any:
    """`work(connection)` committed durably, in one commit with concurrent writes
    of this worker (see `app.store.engine.grouped_write`)."""
    return grouped_write(engine(), work)


def reading() -> Connection:
    return engine().connect().execution_options(readonly=True)


def vonage():
    """The app's VonageClient, or None when Vonage is not configured."""
    return current_app.extensions["vonage"]
