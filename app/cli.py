"""Flask commands for operators: `flask --app app <command>`.

- `migrate`: apply the database migrations (the Procfile's release phase).
- `send-sms`: send one SMS through the service's own sending path (`--wait` follows it).
- `messages list|show`: read the stored messages and their status events.
- `webhook inbound|status`: post a webhook signed as Vonage signs it to any
  deployment (a tunnel URL, staging), to check it end to end.
- `set-webhooks`: point the Vonage application's Messages webhooks at a base URL.
- `retention`: erase the texts of messages older than MESSAGE_RETENTION_DAYS.
- `erase-number`: erase everything kept about one number (a GDPR erasure request).
- `dead-letters list|reprocess`: review signed webhooks that could not be
  interpreted (kept raw, answered 200) and store them after a fix.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import click
import requests
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from app import retention
from app.api import erasure, message_filters, paging, serializers
from app.api.schemas import parse_send
from app.errors import Problem, problem_for
from app.events import cli as events_cli
from app.extensions import reading, writing
from app.failures import Failure
from app.sms import InvalidNumber, normalize_number
from app.status import VONAGE_STATUS_LIST
from app.store import dead_letters as dead_letter_store
from app.store import messages as store
from app.store import migrate as migrations
from app.store import privacy
from app.store.engine import build_engine, write_transaction
from app.vonage_client import application_api
from app.webhooks import dead_letters
from app.webhooks.payloads import (
    INBOUND_PATH,
    STATUS_PATH,
    inbound_payload,
    post_signed,
    status_payload,
)

FINAL_STATUSES = frozenset({"delivered", "read", "rejected", "undeliverable", "failed"})
DELIVERED_STATUSES = frozenset({"delivered", "read"})
WAIT_POLL_SECONDS = 0.5
WEBHOOK_TIMEOUT_SECONDS = 10


def register(app: Flask) -> None:
    app.cli.add_command(migrate_command)
    app.cli.add_command(send_sms_command)
    app.cli.add_command(messages_group)
    app.cli.add_command(webhook_group)
    app.cli.add_command(set_webhooks_command)
    app.cli.add_command(retention_command)
    app.cli.add_command(erase_number_command)
    app.cli.add_command(dead_letters_group)
    events_cli.register(app)
    show_defaults(app)
    _storage_errors_as_one_line(app.cli)


def show_defaults(app: Flask) -> None:
    """`--help` shows every option's default, for every command (groups pass it on)."""
    for command in app.cli.commands.values():
        command.context_settings.setdefault("show_default", True)


def _storage_errors_as_one_line(group: click.Group) -> None:
    """Every operator command (the release phase's `migrate` first) whose database does
    not answer (or fails) says so in one line naming DATABASE_URL and exits 1: no traceback."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _storage_errors_as_one_line(command)
        elif command.callback is not None and not hasattr(command.callback, "__storage_safe__"):
            command.callback = _one_line_on_storage_error(command.callback)


def _one_line_on_storage_error(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()
            raise click.ClickException(
                f"database error (DATABASE_URL): {type(error).__name__}: "
                + (reason[0] if reason else "no detail")
            ) from None

    run.__storage_safe__ = True  # type: ignore[attr-defined]
    return run


def _settings():
    return current_app.extensions["settings"]


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter("must be an http(s) URL such as https://x.ngrok.app")
    return value.rstrip("/")


@click.command("migrate")
@click.option("--revision", default="head", help="the revision to upgrade to")
@with_appcontext
def migrate_command(revision: str) -> None:
    """Apply the database migrations (the Procfile's release phase runs this).

    Upgrades only, never back down; prints the revision the database reached.
    """
    # An engine of its own: the app's engine migrates an embedded SQLite
    # database to head on first use, which would hide where it started.
    url = current_app.extensions["db"].url.render_as_string(hide_password=False)
    engine = build_engine(url)
    try:
        before = migrations.current_revision(engine)
        migrations.upgrade(engine, revision)
        after = migrations.current_revision(engine)
        head = migrations.head_revision(engine)
    finally:
        engine.dispose()
    reached = f"{after or 'base (empty)'}{' (head)' if after == head else ''}"
    if before == after:
        click.echo(f"database already at {reached}; nothing to do")
    else:
        click.echo(f"database upgraded from {before or 'base (empty)'} to {reached}")


@click.command("send-sms")
@click.option("--to", "to", required=True, help="E.164 number, e.g. +14155550100")
@click.option("--text", required=True)
@click.option("--client-ref", default=None, help="your reference, stored and returned")
@click.option(
    "--wait",
    is_flag=True,
    help="follow the message's status until it is final, then print the message",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=60.0, help="seconds --wait waits at most"
)
@with_appcontext
def send_sms_command(
    to: str, text: str, client_ref: str | None, wait: bool, timeout: float
) -> None:
    """Send one SMS exactly as POST /send-sms does (opt-outs, limits, row, Vonage).

    Prints the 202 body, or the problem body and exits 1. With --wait, follows
    the status (delivery receipts reach the running app, which stores them) and
    prints the message with its events: exit 0 when delivered, 1 when it ended
    rejected, undeliverable or failed, 2 when still not final after --timeout.
    """
    body = {"to": to, "text": text}
    if client_ref is not None:
        body["client_ref"] = client_ref
    try:
        config = _settings()
        send_request = parse_send(
            body,
            config.sms_max_length,
            config.send_sms_allowed_countries,
            config.send_sms_blocked_countries,
        )
        result = current_app.extensions["sender"].send(
            send_request, owner="cli", idempotency_key=None
        )
    except (Problem, Failure) as refusal:
        problem = refusal if isinstance(refusal, Problem) else problem_for(refusal)
        # stdout, like a success: stderr carries the app's log lines.
        click.echo(json.dumps(problem.to_dict(), indent=2))
        raise click.exceptions.Exit(1) from None
    if not wait:
        click.echo(json.dumps(result.body, indent=2))
        return
    message = _follow(result.body["id"], timeout)
    click.echo(json.dumps(message, indent=2))
    if message["status"] not in FINAL_STATUSES:
        click.echo(
            f"still {message['status']} after {timeout:g} s; "
            f"`flask --app app messages show {message['id']}` shows it later",
            err=True,
        )
        raise click.exceptions.Exit(2)
    if message["status"] not in DELIVERED_STATUSES:
        raise click.exceptions.Exit(1)


def _follow(message_id: str, timeout: float) -> dict[str, Any]:
    """Poll the stored message until its status is final or `timeout` has passed."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        message = _stored_message(message_id)
        if message["status"] != seen:
            seen = message["status"]
            click.echo(f"status: {seen}", err=True)
        if seen in FINAL_STATUSES or time.monotonic() >= deadline:
            return message
        current_app.extensions["sleep"](WAIT_POLL_SECONDS)


def _stored_message(identifier: str) -> dict[str, Any] | None:
    with reading() as connection:
        row = store.find_message(connection, identifier)
        uuid = row["message_uuid"] if row else identifier
        events = store.events_for(connection, uuid) if uuid else []
    if row is None and not events:
        return None
    message = serializers.message_json(row) if row else {"message_uuid": uuid, "status": None}
    message["events"] = [serializers.event_json(event) for event in events]
    return message


@click.group("messages")
def messages_group() -> None:
    """Read the stored messages (both directions) and their status events."""


@messages_group.command("list")
@click.option("--direction", type=click.Choice(message_filters.DIRECTIONS), default=None)
@click.option("--status", default=None, help="e.g. delivered, rejected, received")
@click.option("--number", default=None, help="either party's number, any common format")
@click.option("--limit", type=click.IntRange(1, paging.MAX_LIMIT), default=20)
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of a table")
@with_appcontext
def messages_list_command(
    direction: str | None, status: str | None, number: str | None, limit: int, as_json: bool
) -> None:
    """The newest messages first: when, direction, status, the other party, id, text."""
    if number is not None:
        try:
            number = normalize_number(number)
        except InvalidNumber as error:
            raise click.BadParameter(str(error), param_hint="--number") from None
    with reading() as connection:
        rows = store.list_messages(
            connection, store.MessageFilter(direction, number, status), limit, None
        )
    for row in rows:
        message = serializers.message_json(row)
        if as_json:
            click.echo(json.dumps(message))
            continue
        other = message["to"] if message["direction"] == "outbound" else message["from"]
        arrow = "->" if message["direction"] == "outbound" else "<-"
        text = (message["text"] or "").replace("\n", " ")
        click.echo(
            f"{message['created_at'][:19]}Z {arrow} {other or '?':<15} "
            f"{message['status'] or '-':<13} {message['id']}  {text[:40]}"
        )
    if not rows and not as_json:
        click.echo("no messages", err=True)


@messages_group.command("show")
@click.argument("identifier")
@with_appcontext
def messages_show_command(identifier: str) -> None:
    """One message by its id or message_uuid, with its status events (as GET /messages/<id>)."""
    message = _stored_message(identifier)
    if message is None:
        raise click.ClickException(f"no message with id or message_uuid {identifier}")
    click.echo(json.dumps(message, indent=2))


@click.group("webhook")
def webhook_group() -> None:
    """Post a signed Vonage webhook to a running deployment (VONAGE_SIGNATURE_SECRET)."""


def _post_webhook(url: str, payload: dict[str, Any]) -> None:
    secret = _settings().vonage_signature_secret
    if not secret:
        raise click.UsageError("VONAGE_SIGNATURE_SECRET is not set")
    click.echo(f"POST {url}")
    click.echo(json.dumps(payload, indent=2))
    try:
        response = post_signed(url, payload, secret, timeout=WEBHOOK_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise click.ClickException(f"could not reach {url}: {error}") from None
    click.echo(f"-> {response.status_code} {response.text.strip()}")
    if response.status_code != 200:
        raise click.exceptions.Exit(1)


@webhook_group.command("inbound")
@click.option("--url", "base_url", required=True, help="the app's base URL")
@click.option("--from", "sender", required=True, help="the texter's number")
@click.option("--text", required=True)
@click.option("--to", "recipient", default=None, help="default: VONAGE_NUMBER")
@click.option("--message-uuid", default=None, help="default: a new uuid (reuse one to replay)")
@with_appcontext
def webhook_inbound_command(
    base_url: str, sender: str, text: str, recipient: str | None, message_uuid: str | None
) -> None:
    """An inbound SMS, as Vonage posts it to /webhooks/inbound."""
    recipient = recipient or _settings().vonage_number
    if not recipient:
        raise click.UsageError("give --to or set VONAGE_NUMBER")
    payload = inbound_payload(
        sender=sender, recipient=recipient, text=text, message_uuid=message_uuid
    )
    _post_webhook(_base_url(base_url) + INBOUND_PATH, payload)


@webhook_group.command("status")
@click.option("--url", "base_url", required=True, help="the app's base URL")
@click.option("--message-uuid", required=True)
@click.option("--status", type=click.Choice(VONAGE_STATUS_LIST), required=True)
@click.option("--to", "recipient", required=True, help="the number the message went to")
@click.option("--from", "sender", default=None, help="default: VONAGE_NUMBER")
@click.option("--client-ref", default=None, help="the service's message id (its `id`)")
@click.option("--error-code", type=int, default=None, help="adds an error object, e.g. 1250")
@with_appcontext
def webhook_status_command(
    base_url: str,
    message_uuid: str,
    status: str,
    recipient: str,
    sender: str | None,
    client_ref: str | None,
    error_code: int | None,
) -> None:
    """A delivery status event, as Vonage posts it to /webhooks/status."""
    sender = sender or _settings().vonage_number
    if not sender:
        raise click.UsageError("give --from or set VONAGE_NUMBER")
    payload = status_payload(
        message_uuid=message_uuid,
        status=status,
        to=recipient,
        sender=sender,
        client_ref=client_ref,
        error_code=error_code,
    )
    _post_webhook(_base_url(base_url) + STATUS_PATH, payload)


@click.command("set-webhooks")
@click.option("--base-url", required=True, help="public base URL, e.g. https://x.ngrok.app")
@with_appcontext
def set_webhooks_command(base_url: str) -> None:
    """Point the application's Messages inbound and status webhooks (v1) at BASE_URL.

    Reads the application, changes only its messages capability, and writes it
    back, so voice/rtc settings, keys and privacy stay as they were.
    """
    settings = _settings()
    base = _base_url(base_url)
    missing = [
        name
        for name in ("VONAGE_API_KEY", "VONAGE_API_SECRET", "VONAGE_APPLICATION_ID")
        if not getattr(settings, name.lower())
    ]
    if missing:
        raise click.UsageError("missing settings: " + ", ".join(missing))

    api = application_api(settings)
    application_id = settings.vonage_application_id
    # The SDK raises its own error classes (only app.vonage_client may import
    # them); any failure here is reported to the operator as it is.
    try:
        current = api.get_application(application_id)
        config = current.model_dump(
            include={"name", "capabilities", "privacy", "keys"}, exclude_none=True
        )
        capabilities = config.setdefault("capabilities", {})
        messages = capabilities.setdefault("messages", {})
        messages["version"] = "v1"
        messages["webhooks"] = {
            "inbound_url": {"address": base + INBOUND_PATH, "http_method": "POST"},
            "status_url": {"address": base + STATUS_PATH, "http_method": "POST"},
        }
        updated = api.update_application(application_id, config)
    except Exception as error:
        raise click.ClickException(f"the Application API call failed: {error}") from None
    hooks = updated.capabilities.messages.webhooks
    click.echo(f"application {updated.id} ({updated.name})")
    click.echo(f"  inbound_url: {hooks.inbound_url.address}")
    click.echo(f"  status_url:  {hooks.status_url.address}")


@click.command("retention")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="default: MESSAGE_RETENTION_DAYS",
)
@with_appcontext
def retention_command(days: int | None) -> None:
    """Erase the texts of messages older than the retention period; rows and statuses stay."""
    days = days or _settings().message_retention_days
    if not days:
        raise click.UsageError("MESSAGE_RETENTION_DAYS is not set; give --days")
    erased = retention.sweep(current_app.extensions["db"], days)
    click.echo(f"erased the text of {erased} messages older than {days} days")


@click.command("erase-number")
@click.argument("number")
@with_appcontext
def erase_number_command(number: str) -> None:
    """Erase every message to or from NUMBER, their status events and stored answers.

    Its opt-out is kept, so the number cannot be texted again by mistake.
    """
    try:
        canonical = message_filters.number_filter(number)
    except InvalidNumber as error:
        raise click.BadParameter(str(error), param_hint="NUMBER") from None
    refused = erasure.refusal(canonical, current_app.extensions["settings"].vonage_number)
    if refused:
        raise click.BadParameter(refused, param_hint="NUMBER")
    with write_transaction(current_app.extensions["db"]) as connection:
        erased = privacy.erase_number(connection, canonical)
    click.echo(json.dumps(erasure.erasure_json(canonical, erased), indent=2))


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Signed webhooks the service could not interpret, kept raw (answered 200 to Vonage)."""


def _dead_letter_line(row: dict[str, Any]) -> str:
    state = row["outcome"] or "pending"
    return (
        f"#{row['id']} {row['kind']} {row['received_at'].isoformat(timespec='seconds')}Z "
        f"{state} {row['reason']}: {row['detail'] or ''}"
    )


@dead_letters_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="include those already reprocessed")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--body", "show_body", is_flag=True, help="print each raw body too")
@with_appcontext
def dead_letters_list_command(show_all: bool, limit: int, show_body: bool) -> None:
    """List kept webhooks, oldest first (pending ones only unless --all)."""
    with reading() as connection:
        rows = dead_letter_store.list_dead_letters(
            connection, pending_only=not show_all, limit=limit
        )
    if not rows:
        click.echo("no dead letters" if show_all else "no pending dead letters")
    for row in rows:
        click.echo(_dead_letter_line(row))
        if show_body:
            click.echo(f"  {row['body']}")


@dead_letters_group.command("reprocess")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="every pending dead letter")
@with_appcontext
def dead_letters_reprocess_command(ids: tuple[int, ...], every: bool) -> None:
    """Interpret kept webhooks again (after a fix) and store those that now parse.

    Storing is idempotent: a message or event already stored stays as it is.
    Exits 1 if any is still not interpretable.
    """
    if bool(ids) == every:
        raise click.UsageError("give dead letter ids, or --all")
    with reading() as connection:
        if every:
            rows = dead_letter_store.list_dead_letters(connection, limit=10_000)
        else:
            rows = dead_letter_store.find(connection, list(ids))
    missing = set(ids) - {row["id"] for row in rows}
    if missing:
        raise click.UsageError("no dead letter " + ", ".join(f"#{i}" for i in sorted(missing)))
    still_kept = 0
    days = _settings().reply_routing_days
    for row in rows:
        if row["reprocessed_at"] is not None:
            click.echo(f"#{row['id']} already reprocessed ({row['outcome']})")
            continue
        with writing() as connection:
            outcome, stored = dead_letters.reprocess(connection, row, routing_days=days)
        if stored is not None:
            stored.count()
        if outcome in ("stored", "duplicate"):
            click.echo(f"#{row['id']} {outcome}")
        else:
            still_kept += 1
            click.echo(f"#{row['id']} still kept: {outcome}")
    if still_kept:
        raise click.exceptions.Exit(1)
