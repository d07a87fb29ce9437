"""Writing events into the outbox, inside the transaction of the change that causes them.

Each hook takes the webhook's own connection: the event rows commit with the
inbound message, the status event or the opt-out, or not at all, so whatever
was answered 200 is delivered even if the process dies right after.

Who receives what:
- `message.status`: the key that sent the message;
- `message.received`: the key that most recently sent to that number within
  `REPLY_ROUTING_DAYS`;
- `contact.opted_out` / `contact.opted_in`: every key that texted the number,
  however long ago (the window is for replies only), and only when the
  opt-out really changed;
- a `scope: all` subscription: every event of its types, owned or not.
One event row is written per receiving key (its `webhook-id`), and one
delivery per subscription that takes the event's type.

Most webhooks have no receiver at all (no key sent to that number, no `scope:
all` subscription): a cheap check inside the very statement that stores the
message or the status event says so, and only a webhook that may have one
takes the full look-ups. The check reads the same rows the look-ups would, so
it never skips an event they would write.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from app.api.serializers import event_json, iso, known_only_by_events, message_json
from app.store import outbox as store
from app.store.dialect import utcnow

MESSAGE_RECEIVED = "message.received"
MESSAGE_STATUS = "message.status"
OPTED_OUT = "contact.opted_out"
OPTED_IN = "contact.opted_in"
EVENT_TYPES = (MESSAGE_RECEIVED, MESSAGE_STATUS, OPTED_OUT, OPTED_IN)


def reply_window_start(routing_days: int) -> datetime:
    """Sends since this moment route a reply (`routing_days`: `REPLY_ROUTING_DAYS`)."""
    return utcnow() - timedelta(days=routing_days)


def message_received(connection: Connection, inbound: dict[str, Any], *, since: datetime) -> int:
    """After an inbound message is stored: `message.received` for its receivers.

    `inbound` needs its `message_uuid` and `from_number`; the stored row is read
    back (only when someone receives the event) so `data` is what the API shows.
    `since` is `reply_window_start()`. The caller has checked already, in the
    statement that stored the message, that the reply can have a receiver
    (`ingest.insert_inbound_reply`), so there is no check of its own here.
    """
    now = utcnow()
    owner = store.reply_owner(connection, inbound["from_number"], since)

    def data() -> dict[str, Any]:
        return _message_data(store.message_by_uuid(connection, inbound["message_uuid"]), [])

    return _record(connection, MESSAGE_RECEIVED, {owner} if owner else set(), data, now)


def message_status(connection: Connection, status_event: dict[str, Any]) -> int:
    """After a new status event is stored: a `message.status` event for the sending key.

    The caller has checked already, in the statement that stored the event, that it
    can have a receiver (`ingest.insert_status_event`), so there is no check here.
    """
    now = utcnow()
    client_ref = status_event.get("client_ref")
    message = store.message_for_status(connection, status_event["message_uuid"], client_ref)
    owner = message.get("owner") if message else None

    def data() -> dict[str, Any]:
        history = store.events_for_message(connection, status_event["message_uuid"])
        if message is not None:
            return _message_data(message, history)
        return _unknown_message_data(status_event, history)

    return _record(connection, MESSAGE_STATUS, {owner} if owner else set(), data, now)


def contact_changed(
    connection: Connection, number: str, *, opted_out: bool, message_uuid: str | None
) -> int:
    """After an opt-out or opt-in: an event for every key that texted the number."""
    now = utcnow()
    owners = store.owners_texting(connection, number)
    data = {
        "number": number,
        "opted_out": opted_out,
        "message_uuid": message_uuid,
        "changed_at": iso(now),
    }
    return _record(connection, OPTED_OUT if opted_out else OPTED_IN, owners, lambda: data, now)


def routed_to_owner(connection: Connection, event: dict[str, Any], *, routing_days: int) -> bool:
    """Whether routing chose the event's key (not only its `scope: all` subscriptions).

    Derived again as `_record`'s callers did, from what was stored up to the event.
    """
    data = json.loads(event["body"])["data"]
    at, owner = event["created_at"], event["owner"]
    if event["type"] == MESSAGE_STATUS:
        message = store.message_for_status(connection, data["message_uuid"], data.get("id"))
        return message is not None and message.get("owner") == owner
    if event["type"] == MESSAGE_RECEIVED:
        since = at - timedelta(days=routing_days)
        return store.reply_owner(connection, data["from"], since, until=at) == owner
    return owner in store.owners_texting(connection, data["number"], until=at)


def _record(connection: Connection, event_type: str, owners: set[str], data, now) -> int:
    """One event per receiving key, one delivery per subscription; the count of events."""
    subscribers = [
        sub
        for sub in store.active_subscribers(connection, owners)
        if store.wants(sub["event_types"], event_type)
        and (sub["scope"] == "all" or sub["owner"] in owners)
    ]
    receivers = owners | {sub["owner"] for sub in subscribers}
    if not receivers:
        return 0
    body = {"type": event_type, "timestamp": iso(now), "data": data()}
    event_ids = {}
    for owner in sorted(receivers):
        event_ids[owner] = new_event_id()
        store.insert_event(
            connection,
            {
                "id": event_ids[owner],
                "owner": owner,
                "type": event_type,
                "body": json.dumps(body, separators=(",", ":")),
                "created_at": now,
            },
        )
    store.insert_deliveries(
        connection,
        [store.new_delivery(event_ids[sub["owner"]], sub["id"], now) for sub in subscribers],
    )
    return len(receivers)


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def _message_data(message: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    return _with_history(message_json(message), history)


def _with_history(data: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    data["events"] = [event_json(event) for event in history]
    return data


def _unknown_message_data(
    status_event: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, Any]:
    """A message this service did not send (or not yet): as GET /messages/<uuid> shows it."""
    return _with_history(known_only_by_events(status_event["message_uuid"], history), history)
