"""canonical numbers: stored phone numbers rewritten in canonical E.164 digits

Before this release a number was stored as typed (`330612345678` for
`+330612345678`), so an opt-out or a history filter missed the same number
written another way. Every valid phone number in `messages.from_number`,
`messages.to_number` (SMS rows only: other channels' ids are not phone numbers)
and `opt_outs.number` becomes phonenumbers' E.164 form
without the `+`; short codes, alphanumeric senders and unknown ranges stay.
An opt-out already held under the canonical form keeps the earlier record.

Revision ID: 0003
Revises: 0004
Create Date: 2026-11-27 07:45:00
"""

import phonenumbers
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0004"
branch_labels = None
depends_on = None

messages = sa.table(
    "messages", sa.column("from_number"), sa.column("to_number"), sa.column("channel")
)
opt_outs = sa.table(
    "opt_outs", sa.column("number"), sa.column("opted_out_at"), sa.column("message_uuid")
)


def canonical(value: str) -> str | None:
    """The canonical digits when `value` is a valid number stored another way, else None."""
    if not value or not value.isascii() or not value.isdigit():
        return None
    try:
        parsed = phonenumbers.parse("+" + value)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    digits = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    return digits if digits != value else None


def upgrade() -> None:
    connection = op.get_bind()
    for column in ("from_number", "to_number"):
        sms = messages.c.channel == "sms"
        stored = connection.execute(sa.select(messages.c[column]).where(sms).distinct()).scalars()
        for value in stored.all():
            fixed = canonical(value)
            if fixed is not None:
                connection.execute(
                    sa.update(messages)
                    .where(messages.c[column] == value, sms)
                    .values({column: fixed})
                )
    rows = connection.execute(sa.select(opt_outs)).all()
    held = {row.number for row in rows}
    for row in sorted(rows, key=lambda row: row.opted_out_at):
        fixed = canonical(row.number)
        if fixed is None:
            continue
        connection.execute(sa.delete(opt_outs).where(opt_outs.c.number == row.number))
        if fixed not in held:
            connection.execute(
                sa.insert(opt_outs).values(
                    number=fixed, opted_out_at=row.opted_out_at, message_uuid=row.message_uuid
                )
            )
            held.add(fixed)


def downgrade() -> None:
    """Nothing to undo: the canonical form is one of the forms the old code stored."""
