"""The webhook hot path's SQL on the DBAPI connection: stored exactly as Core stores it."""

import itertools
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from app.store import ingest
from app.store.dialect import upsert
from app.store.engine import build_engine
from app.store.models import Message, MessageEvent, Subscription

messages = Message.__table__
message_events = MessageEvent.__table__
subscriptions = Subscription.__table__

NOW = datetime(2026, 11, 27, 10, 0, 0, 123456)
ON_THE_SECOND = datetime(2026, 11, 27, 10, 0, 1)


def inbound_row(**overrides):
    row = {
        "id": str(uuid.uuid4()),
        "message_uuid": str(uuid.uuid4()),
        "channel": "sms",
        "message_type": "text",
        "from_number": "14155550100",
        "to_number": "14155550199",
        "text": "Hello \u2603",
        "media_url": None,
        "segments": 1,
        "price": None,
        "currency": None,
        "network_code": "310260",
        "direction": "inbound",
        "status": "received",
        "created_at": NOW,
        "updated_at": ON_THE_SECOND,
    }
    row.update(overrides)
    return row


def status_row(**overrides):
    row = {
        "message_uuid": str(uuid.uuid4()),
        "status": "rejected",
        "timestamp": ON_THE_SECOND,
        "client_ref": None,
        "error": {"type": "https://developer.vonage.com/x", "title": "1250", "detail": "d"},
        "price": "0.0333",
        "currency": "EUR",
        "segments": 2,
        "channel": "sms",
        "network_code": None,
        "received_at": NOW,
    }
    row.update(overrides)
    return row


def stored_raw(connection, table, key_column, key):
    """The row as the database holds it (text of dates and JSON, not Python values)."""
    columns = ", ".join(column.name for column in table.columns if column.name != "id")
    return connection.exec_driver_sql(
        f"SELECT {columns} FROM {table.name} WHERE {key_column} = '{key}'"
    ).one()


@pytest.mark.parametrize("error", [None, {"type": "t", "title": "1250"}])
def test_a_status_event_is_stored_byte_for_byte_as_core_stores_it(connection, error):
    fast, core = status_row(error=error), status_row(error=error)
    assert ingest.insert_status_event(connection, fast) is False  # stored, no receiver
    assert ingest.insert_status_event(connection, fast) is None  # the same event again
    connection.execute(upsert(connection, message_events).values(**core))
    fast_raw = stored_raw(connection, message_events, "message_uuid", fast["message_uuid"])
    core_raw = stored_raw(connection, message_events, "message_uuid", core["message_uuid"])
    assert fast_raw[1:] == core_raw[1:]  # all but the uuid itself


def test_an_inbound_message_is_stored_as_core_stores_it_and_once_per_uuid(connection):
    fast, core = inbound_row(), inbound_row()
    assert ingest.insert_inbound_reply(connection, fast, NOW) is not None
    assert ingest.insert_inbound_reply(connection, {**fast, "id": str(uuid.uuid4())}, NOW) is None
    connection.execute(messages.insert().values(**core))
    fast_raw = stored_raw(connection, messages, "message_uuid", fast["message_uuid"])
    core_raw = stored_raw(connection, messages, "message_uuid", core["message_uuid"])
    assert fast_raw[1:] == core_raw[1:]
    read = connection.execute(
        select(messages).where(messages.c.message_uuid == fast["message_uuid"])
    ).one()
    assert (read.created_at, read.updated_at, read.text) == (NOW, ON_THE_SECOND, "Hello \u2603")


def test_advance_moves_forward_only_and_links_the_uuid_by_client_ref(connection):
    message_id = str(uuid.uuid4())
    connection.execute(
        messages.insert().values(
            **inbound_row(
                id=message_id,
                message_uuid=None,
                direction="outbound",
                status="pending",
                owner="key-a",
            )
        )
    )
    assert ingest.advance(connection, "uuid-1", message_id, "delivered", None, NOW)
    assert not ingest.advance(connection, "uuid-1", message_id, "submitted", None, NOW)
    assert not ingest.advance(connection, "uuid-1", None, "not-a-status", None, NOW)
    ingest.record_billing(
        connection, "uuid-1", None, {"price": "0.05", "currency": None, "segments": 3}
    )
    row = connection.execute(select(messages).where(messages.c.id == message_id)).one()
    assert (row.status, row.message_uuid, row.error) == ("delivered", "uuid-1", None)
    assert (row.price, row.segments) == ("0.05", 3)


_EVENT_SECONDS = itertools.count()


def status_has_receivers(connection, message_uuid, client_ref):
    """What storing a (new) status event for `message_uuid` says of its receivers."""
    at = ON_THE_SECOND + timedelta(seconds=next(_EVENT_SECONDS))
    row = status_row(message_uuid=message_uuid, client_ref=client_ref, timestamp=at)
    answer = ingest.insert_status_event(connection, row)
    assert answer is not None, "a new event is stored"
    return answer


def reply_has_receivers(connection, number, since):
    """What storing an inbound message from `number` says of its reply's receivers."""
    return ingest.insert_inbound_reply(connection, inbound_row(from_number=number), since)


def test_receiver_checks_see_owners_in_the_window_and_enabled_broadcasts(connection):
    sent = inbound_row(direction="outbound", status="submitted", owner="key-a", created_at=NOW)
    assert reply_has_receivers(connection, sent["to_number"], NOW) is False
    assert not status_has_receivers(connection, sent["message_uuid"], None)
    connection.execute(messages.insert().values(**sent))
    assert reply_has_receivers(connection, sent["to_number"], NOW) is True
    assert reply_has_receivers(connection, sent["to_number"], ON_THE_SECOND) is False
    assert status_has_receivers(connection, sent["message_uuid"], None)
    assert status_has_receivers(connection, "unlinked", sent["id"])
    assert not status_has_receivers(connection, "other", None)
    subscription = {
        "id": str(uuid.uuid4()),
        "owner": "key-b",
        "url": "https://example.com/hook",
        "event_types": ["*"],
        "scope": "all",
        "secret": "whsec_x",
        "disabled_at": NOW,
        "created_at": NOW,
    }
    connection.execute(subscriptions.insert().values(**subscription))
    assert not status_has_receivers(connection, "other", None)
    connection.execute(subscriptions.update().values(disabled_at=None))
    assert status_has_receivers(connection, "other", None)
    assert reply_has_receivers(connection, "14155550111", NOW + timedelta(days=1)) is True


def test_an_inbound_message_stored_twice_says_so_whatever_its_receivers(connection):
    row = inbound_row()
    assert ingest.insert_inbound_reply(connection, row, NOW) is False
    assert ingest.insert_inbound_reply(connection, {**row, "id": str(uuid.uuid4())}, NOW) is None


def test_a_driver_error_is_raised_as_sqlalchemys_so_the_webhook_answers_503():
    engine = build_engine("sqlite://")  # no tables at all
    try:
        with engine.begin() as connection, pytest.raises(DBAPIError) as raised:
            ingest.insert_inbound_reply(connection, inbound_row(), NOW)
        assert "14155550100" not in str(raised.value)  # parameters stay hidden
    finally:
        engine.dispose()
