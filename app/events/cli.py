"""Operator commands for events: `flask --app app dispatch` and `flask --app app events ...`.

- `dispatch`: run the dispatcher (the Procfile's `worker:`).
- `events failed`: list deliveries that were given up.
- `events replay --since ... [--until ...]`: queue a time range's deliveries again.
- `events listen --secret whsec_...`: a local receiver that verifies and prints events.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from app.api.serializers import iso
from app.events.dispatcher import Dispatcher
from app.events.receiver import make_server, print_event
from app.store import outbox as store
from app.store.dialect import utcnow
from app.store.engine import write_transaction


def register(app) -> None:
    app.cli.add_command(dispatch_command)
    app.cli.add_command(events_group)


def _engine():
    return current_app.extensions["db"]


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


@click.command("dispatch")
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="default: EVENT_DISPATCHER_THREADS"
)
@with_appcontext
def dispatch_command(threads: int | None) -> None:
    """Push events to subscribers until SIGTERM or Ctrl-C (the Procfile's worker)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    dispatcher = Dispatcher(_engine(), current_app.extensions["settings"], threads=threads)
    dispatcher.run(stop)


@click.group("events")
def events_group() -> None:
    """Inspect and replay event deliveries; run a local receiver."""


@events_group.command("failed")
@click.option("--since", type=click.DateTime(), default=None, help="events created since (UTC)")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@with_appcontext
def failed_command(since: datetime | None, limit: int) -> None:
    """Deliveries given up (retries exhausted, refused destination, or 410), oldest first."""
    with _engine().connect() as connection:
        rows = store.failed_deliveries(connection, _naive_utc(since), limit)
    for row in rows:
        click.echo(
            json.dumps(
                {
                    "event_id": row["event_id"],
                    "type": row["type"],
                    "created_at": iso(row["event_created_at"]),
                    "subscription_id": row["subscription_id"],
                    "url": row["url"],
                    "attempts": row["attempts"],
                    "last_status_code": row["last_status_code"],
                    "last_error": row["last_error"],
                }
            )
        )
    click.echo(f"{len(rows)} failed deliveries", err=True)


@events_group.command("replay")
@click.option("--since", type=click.DateTime(), required=True, help="UTC, e.g. 2026-11-27T08:00")
@click.option("--until", type=click.DateTime(), default=None, help="UTC; default: now")
@click.option("--all", "everything", is_flag=True, help="also deliveries that succeeded")
@with_appcontext
def replay_command(since: datetime, until: datetime | None, everything: bool) -> None:
    """Queue again the failed (or, with --all, every) deliveries of events in [since, until)."""
    now = utcnow()
    with write_transaction(_engine()) as connection:
        queued = store.replay_range(
            connection, _naive_utc(since), _naive_utc(until) or now, now, not everything
        )
    click.echo(f"{queued} deliveries queued again")


@events_group.command("listen")
@click.option("--secret", envvar="EVENTS_SECRET", required=True, help="the subscription's whsec_…")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=4000, show_default=True)
def listen_command(secret: str, host: str, port: int) -> None:
    """Receive events on http://HOST:PORT/, verify their signatures, print them."""
    server = make_server(host, port, secret, print_event)
    click.echo(f"listening on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
