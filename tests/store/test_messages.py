"""app/store/messages.py on a real database: sends, inbound, status events, history."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import update

from app.store import messages
from app.store.dialect import utcnow

OURS = "14155550199"
THEM = "14155550100"
SOMEONE = "14155550101"
SENT_AT = datetime(2026, 11, 27, 10, 0, 0)


def outbound(connection, to: str = THEM, **extra) -> dict:
    row = {
        "id": str(uuid.uuid4()),
        "from_number": OURS,
        "to_number": to,
        "text": "Hi",
        "status": "pending",
        "segments": 1,
        "encoding": "GSM-7",
        "client_ref": None,
        "owner": "owner-a",
        **extra,
    }
    return messages.insert_outbound(connection, row)


def inbound(connection, sender: str = THEM, message_uuid: str | None = None) -> bool:
    """True when stored, False for a redelivery."""
    row = {
        "id": str(uuid.uuid4()),
        "message_uuid": message_uuid or str(uuid.uuid4()),
        "from_number": sender,
        "to_number": OURS,
        "text": "Hello",
        "segments": 1,
        "encoding": "GSM-7",
        "channel": "sms",
    }
    return messages.insert_inbound(connection, row, since=SENT_AT) is not None


def event(message_uuid: str, status: str, minute: int = 0, **extra) -> dict:
    return {
        "message_uuid": message_uuid,
        "status": status,
        "timestamp": SENT_AT + timedelta(minutes=minute),
        "client_ref": None,
        "error": None,
        **extra,
    }


def status_of(connection, message_id: str) -> str:
    return messages.find_message(connection, message_id)["status"]


def test_a_send_is_stored_pending_then_linked_to_vonage(connection):
    row = outbound(connection)

    stored = messages.find_message(connection, row["id"])
    assert (stored["direction"], stored["status"], stored["message_uuid"]) == (
        "outbound",
        "pending",
        None,
    )

    messages.mark_sent(connection, row["id"], "uuid-1")

    assert messages.find_message(connection, "uuid-1")["id"] == row["id"]
    assert status_of(connection, row["id"]) == "submitted"


def test_status_only_moves_forward(connection):
    row = outbound(connection)
    messages.mark_sent(connection, row["id"], "uuid-1")

    assert messages.insert_event(connection, event("uuid-1", "delivered", 2)) == "advanced"
    assert messages.insert_event(connection, event("uuid-1", "submitted", 1)) == "kept"

    assert status_of(connection, row["id"]) == "delivered"
    assert [e["status"] for e in messages.events_for(connection, "uuid-1")] == [
        "submitted",
        "delivered",
    ]


def test_a_repeated_event_is_stored_once(connection):
    row = outbound(connection)
    messages.mark_sent(connection, row["id"], "uuid-1")

    assert messages.insert_event(connection, event("uuid-1", "delivered")) == "advanced"
    assert messages.insert_event(connection, event("uuid-1", "delivered")) is None

    assert len(messages.events_for(connection, "uuid-1")) == 1


def test_a_receipt_that_outruns_the_send_is_applied_when_it_is_linked(connection):
    row = outbound(connection)

    assert messages.insert_event(connection, event("uuid-1", "delivered")) == "kept"
    messages.mark_sent(connection, row["id"], "uuid-1")

    assert status_of(connection, row["id"]) == "delivered"


def test_an_event_finds_an_unlinked_send_by_its_client_ref(connection):
    row = outbound(connection)

    outcome = messages.insert_event(connection, event("uuid-1", "rejected", client_ref=row["id"]))

    assert outcome == "advanced"
    stored = messages.find_message(connection, row["id"])
    assert (stored["status"], stored["message_uuid"]) == ("rejected", "uuid-1")


def test_billing_reaches_the_message_even_when_its_status_does_not_move(connection):
    row = outbound(connection)
    messages.mark_sent(connection, row["id"], "uuid-1")
    messages.insert_event(connection, event("uuid-1", "delivered", 2))

    billed = event("uuid-1", "submitted", 1, price="0.0333", currency="EUR", segments=2)
    assert messages.insert_event(connection, billed) == "kept"

    stored = messages.find_message(connection, row["id"])
    assert (stored["status"], stored["price"], stored["currency"], stored["segments"]) == (
        "delivered",
        "0.0333",
        "EUR",
        2,
    )


def test_an_outcome_never_overwrites_a_receipt(connection):
    settled = outbound(connection)
    messages.mark_sent(connection, settled["id"], "uuid-1")
    messages.insert_event(connection, event("uuid-1", "delivered"))
    unsettled = outbound(connection)
    error = {"type": "about:blank", "title": "Vonage timed out"}

    messages.mark_outcome(connection, settled["id"], "unknown", error)
    messages.mark_outcome(connection, unsettled["id"], "unknown", error)

    assert status_of(connection, settled["id"]) == "delivered"
    assert messages.find_message(connection, unsettled["id"])["error"] == error
    assert status_of(connection, unsettled["id"]) == "unknown"


def test_abandoned_sends_are_settled_by_how_far_they_got(connection):
    before_call = outbound(connection)
    after_call = outbound(connection)
    assert messages.mark_vonage_called(connection, after_call["id"]) is True
    recent = outbound(connection)
    cutoff = utcnow() + timedelta(seconds=1)
    connection.execute(
        update(messages.messages)
        .where(messages.messages.c.id == recent["id"])
        .values(created_at=cutoff + timedelta(minutes=1))
    )

    settled = messages.settle_abandoned(connection, cutoff)

    assert {(s.message_id, s.status) for s in settled} == {
        (before_call["id"], "failed"),
        (after_call["id"], "unknown"),
    }
    assert status_of(connection, recent["id"]) == "pending"
    assert messages.mark_vonage_called(connection, before_call["id"]) is False


def test_an_inbound_redelivery_is_stored_once(connection):
    assert inbound(connection, message_uuid="in-1") is True
    assert inbound(connection, message_uuid="in-1") is False

    stored = messages.find_message(connection, "in-1")
    assert (stored["direction"], stored["status"]) == ("inbound", "received")
    listed = messages.list_messages(connection, messages.MessageFilter(), 10, None)
    assert len(listed) == 1


def test_history_pages_newest_first_without_gaps_or_repeats(connection):
    ids = [outbound(connection)["id"] for _ in range(5)]
    # Two rows share a created_at: the id breaks the tie.
    connection.execute(
        update(messages.messages)
        .where(messages.messages.c.id.in_(ids[3:]))
        .values(created_at=datetime(2030, 1, 1))
    )

    pages, after = [], None
    while True:
        page = messages.list_messages(connection, messages.MessageFilter(), 2, after)
        if not page:
            break
        pages.append([row["id"] for row in page])
        after = (page[-1]["created_at"], page[-1]["id"])

    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [message_id for page in pages for message_id in page]
    everything = messages.list_messages(connection, messages.MessageFilter(), 10, None)
    assert listed == [row["id"] for row in everything]
    assert sorted(listed) == sorted(ids)
    assert listed[:2] == sorted(ids[3:], reverse=True)


def test_history_filters_by_direction_number_and_status(connection):
    to_them = outbound(connection, to=THEM)
    to_someone = outbound(connection, to=SOMEONE)
    inbound(connection, sender=THEM, message_uuid="in-1")
    messages.mark_sent(connection, to_someone["id"], "uuid-2")

    def ids(**filters) -> set[str]:
        found = messages.list_messages(connection, messages.MessageFilter(**filters), 10, None)
        return {row["message_uuid"] or row["id"] for row in found}

    assert ids(number=THEM) == {to_them["id"], "in-1"}
    assert ids(direction="inbound") == {"in-1"}
    assert ids(direction="outbound", number=SOMEONE) == {"uuid-2"}
    assert ids(status="pending") == {to_them["id"]}
