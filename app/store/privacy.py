"""Erasing personal data: message texts past retention, everything about one number."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, or_, select, update

from app.store.dialect import utcnow
from app.store.models import IdempotencyKey, Message, MessageEvent, OptOut

messages = Message.__table__
events = MessageEvent.__table__
opt_outs = OptOut.__table__
idempotency_keys = IdempotencyKey.__table__


def erase_texts_before(connection: Connection, cutoff: datetime) -> int:
    """Blank the text of every message created before `cutoff`; rows and statuses stay."""
    result = connection.execute(
        update(messages)
        .where(messages.c.created_at < cutoff, messages.c.text.is_not(None))
        .values(text=None, updated_at=utcnow())
    )
    return result.rowcount


@dataclass(frozen=True)
class Erasure:
    messages: int
    events: int
    idempotency_keys: int
    opted_out: bool


def erase_number(connection: Connection, number: str) -> Erasure:
    """Delete every message to or from `number`, their status events, and stored answers
    naming it. An opt-out is kept (without its link to the deleted message): it is the
    person's own objection, and forgetting it would let the number be texted again.
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
    kept = connection.execute(
        update(opt_outs).where(opt_outs.c.number == number).values(message_uuid=None)
    ).rowcount
    return Erasure(erased_messages, erased_events, erased_keys, kept > 0)
