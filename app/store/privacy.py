"""Erasing personal data: message texts past retention, everything about one number."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, exists, or_, select, update

from app.store.dialect import utcnow
from app.store.models import (
    DeadLetter,
    Delivery,
    Event,
    IdempotencyKey,
    Message,
    MessageEvent,
    OptOut,
)
from app.store.outbox import PENDING

messages = Message.__table__
events = MessageEvent.__table__
opt_outs = OptOut.__table__
idempotency_keys = IdempotencyKey.__table__
outbox_events = Event.__table__
deliveries = Delivery.__table__
dead_letters = DeadLetter.__table__


def _like_literal(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def erase_texts_before(connection: Connection, cutoff: datetime) -> int:
    """Blank the text of every message created before `cutoff`; rows and statuses stay."""
    result = connection.execute(
        update(messages)
        .where(messages.c.created_at < cutoff, messages.c.text.is_not(None))
        .values(text=None, updated_at=utcnow())
    )
    return result.rowcount


def erase_events_before(connection: Connection, cutoff: datetime) -> int:
    """Delete outbox events (which carry message texts) created before `cutoff`,
    unless a delivery of theirs is still pending; their deliveries go with them."""
    pending = exists().where(
        deliveries.c.event_id == outbox_events.c.id, deliveries.c.status == PENDING
    )
    old = select(outbox_events.c.id).where(outbox_events.c.created_at < cutoff, ~pending)
    connection.execute(delete(deliveries).where(deliveries.c.event_id.in_(old)))
    return connection.execute(
        delete(outbox_events).where(outbox_events.c.created_at < cutoff, ~pending)
    ).rowcount


def erase_dead_letters_before(connection: Connection, cutoff: datetime) -> int:
    """Delete dead letters received before `cutoff`: each is a raw webhook body, an
    inbound text among it, and retention leaves no text older than its period."""
    return connection.execute(
        delete(dead_letters).where(dead_letters.c.received_at < cutoff)
    ).rowcount


@dataclass(frozen=True)
class Erasure:
    messages: int
    events: int
    idempotency_keys: int
    outbox_events: int
    dead_letters: int
    opted_out: bool


def erase_number(connection: Connection, number: str) -> Erasure:
    """Delete every message to or from `number`, their status events, and the outbox
    events (with their deliveries), raw dead letters and stored answers naming it.

    An opt-out is kept (without its link to the deleted message): it is the person's
    own objection, and forgetting it would let the number be texted again.
    """
    involved = or_(messages.c.to_number == number, messages.c.from_number == number)
    their_uuids = select(messages.c.message_uuid).where(
        involved, messages.c.message_uuid.is_not(None)
    )
    their_ids = select(messages.c.id).where(involved)
    erased_events = connection.execute(
        delete(events).where(
            or_(events.c.message_uuid.in_(their_uuids), events.c.client_ref.in_(their_ids))
        )
    ).rowcount
    erased_messages = connection.execute(delete(messages).where(involved)).rowcount
    erased_keys = 0
    if number.isdigit():
        # A 202 answer kept for an Idempotency-Key names its recipient.
        naming = "%" + json.dumps({"to": number})[1:-1] + "%"
        erased_keys = connection.execute(
            delete(idempotency_keys).where(idempotency_keys.c.response_body.like(naming))
        ).rowcount
    quoted = _like_literal(json.dumps(number))
    naming_number = or_(
        *(
            outbox_events.c.body.like(f'%"{name}":{quoted}%', escape="\\")
            for name in ("from", "to", "number")
        )
    )
    about = select(outbox_events.c.id).where(naming_number)
    connection.execute(delete(deliveries).where(deliveries.c.event_id.in_(about)))
    erased_outbox = connection.execute(delete(outbox_events).where(naming_number)).rowcount
    erased_dead = connection.execute(
        delete(dead_letters).where(dead_letters.c.body.like(f"%{quoted}%", escape="\\"))
    ).rowcount
    kept = connection.execute(
        update(opt_outs).where(opt_outs.c.number == number).values(message_uuid=None)
    ).rowcount
    return Erasure(
        erased_messages, erased_events, erased_keys, erased_outbox, erased_dead, kept > 0
    )
